"""Shared fixtures: a private cache per test session, synthetic faces, and the real archive when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import link_cache_files

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = REPO.parent / "shared" / "data" / "utkface" / "UTKFace.tar.gz"
# torchvision's offline ImageNet weights; set before any test module builds a backbone.
os.environ.setdefault("TORCH_HOME", str(REPO.parent / "shared" / "torch"))


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs two processes) each process takes its share of the cores:
    two processes each using every core would fight over them, and the tests' small models gain more from
    running side by side than from a second thread each."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """Every test writes into one throw-away cache, never the user's."""
    cache = tmp_path_factory.mktemp("olvido-cache")
    os.environ["OLVIDO_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def synthetic_faces():
    from olvido.data import make_synthetic_faces

    return make_synthetic_faces(n=2000, image_size=64, seed=0)


@pytest.fixture(scope="session")
def prepared(synthetic_faces, session_cache):
    from olvido.data import ProtocolConfig, prepare_faces

    return prepare_faces(synthetic_faces, ProtocolConfig(seed=0), cache=session_cache)


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    """One folder of trained models for the whole run, seen by every pytest-xdist process (their base temp
    folders' common parent). A model's file name is the hash of everything its weights depend on (data,
    features, architecture, recipe, seed) and files are written atomically and never changed, so a model
    any test trained is the model another test would train with the same recipe: it is loaded instead."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "olvido-shared-models"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def share_features(prepared, session_cache, shared_models):
    """``share_features(cache)`` puts the head-scope features of the synthetic faces under the tests' usual
    model (ImageNet MobileNetV2, no mirror views) into a test's own cache, extracted once per session:
    extraction dominates a small test's time, and tests of extraction itself do not use this. The cache's
    ``models`` folder is the run's shared one (``shared_models``): the usual recipe's originals and
    retrained models (FAST_FIT, group 0) recur across modules. ``models=False`` keeps the cache's models
    its own, for tests of training and of the model cache itself."""
    from olvido.experiments.workspace import ModelConfig, Workspace

    model = ModelConfig(init="imagenet", ensemble=1, mirror=False)
    _ = Workspace(prepared, model, cache=session_cache, progress=False).inputs

    def share(cache, models: bool = True) -> Path:
        cache = link_cache_files(session_cache, Path(cache), "features")
        if models and not (cache / "models").exists():
            (cache / "models").symlink_to(shared_models, target_is_directory=True)
        return cache

    return share


@pytest.fixture(scope="session")
def utkface_archive() -> Path:
    path = Path(os.environ.get("OLVIDO_UTKFACE", DEFAULT_ARCHIVE))
    if not path.exists():
        pytest.skip(f"real UTKFace archive not found at {path} (set OLVIDO_UTKFACE)")
    return path
