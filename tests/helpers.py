"""Shared test helpers: the quick training recipe, the weights marker and a tiny unlearning problem."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from olvido.executor import LocalExecutor
from olvido.training import ArrayDataset, FitConfig, fit, predict

SHARED_TORCH = Path(__file__).resolve().parents[2] / "shared" / "torch"
FAST_FIT = FitConfig(epochs=30, batch_size=256, lr=2e-3, patience=4)  # a quick recipe for synthetic tests


def _has_imagenet_weights() -> bool:
    home = Path(os.environ.get("TORCH_HOME", SHARED_TORCH)) / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    return home.exists()


needs_weights = pytest.mark.skipif(not _has_imagenet_weights(), reason="ImageNet MobileNetV2 weights not in TORCH_HOME")


def small_workspace(prepared, cache, fit_config: FitConfig = FAST_FIT):
    """The tests' usual workspace: ImageNet MobileNetV2, one member, no mirror views, ``fit_config``, quiet."""
    from olvido.experiments.workspace import ModelConfig, Workspace

    model = ModelConfig(init="imagenet", ensemble=1, mirror=False)
    return Workspace(prepared, model, fit_config=fit_config, cache=cache, progress=False)


def link_cache_files(source: Path, target: Path, *folders: str) -> Path:
    """Hard-links (copies across file systems) every file of ``folders`` of cache ``source`` into ``target``;
    cache files are written atomically and never changed in place, so sharing them is safe."""
    for folder in folders:
        (target / folder).mkdir(parents=True, exist_ok=True)
        for path in (source / folder).iterdir():
            destination = target / folder / path.name
            if not destination.exists():
                try:
                    os.link(path, destination)
                except OSError:
                    shutil.copy2(path, destination)
    return target


class Untouchable(Dataset):
    """A data set that fails the test if anything reads it."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        raise AssertionError("a data set the method did not declare was read")

    __getitems__ = __getitem__


class Line(nn.Module):
    """f(x) = w . x + b, shape (batch,)."""

    def __init__(self, w, b):
        super().__init__()
        self.linear = nn.Linear(len(w), 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([w]))
            self.linear.bias.fill_(b)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


class StripesNet(nn.Module):
    """A tiny foreign regression CNN (not an olvido model): conv + BatchNorm + an MLP head, output in
    [20, 60] through a scaled sigmoid, shape (batch,)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.head = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20 + 40 * torch.sigmoid(self.head(self.features(x)).squeeze(-1))


@dataclass
class StripesProblem:
    """Age from the orientation of stripes in 8x8 images (0 degrees at 20 years, 90 at 60; random phase,
    pixel noise; labels with 2 years of noise), forget set = everyone aged 20-28. The original, trained on
    everything, predicts the forget set well; a model retrained without it extrapolates and errs about
    three times more there. A method that forgets should move the forget-set MAE toward the retrained
    model's without losing accuracy on the retain set."""

    n: int = 1200
    seed: int = 0

    @cached_property
    def data(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        age = rng.uniform(20, 60, self.n).astype(np.float32)
        theta = (age - 20) / 40 * (np.pi / 2)
        phase = rng.uniform(0, 2 * np.pi, self.n)
        yy, xx = np.mgrid[0:8, 0:8]
        wave = np.sin(
            np.pi / 2 * (xx[None] * np.cos(theta)[:, None, None] + yy[None] * np.sin(theta)[:, None, None])
            + phase[:, None, None]
        )
        images = (wave + rng.normal(0, 0.3, wave.shape))[:, None].astype(np.float32)
        labels = (age + rng.normal(0, 2, self.n)).clip(20, 60).astype(np.float32)
        return torch.from_numpy(images), age, labels

    @cached_property
    def ids(self) -> dict[str, np.ndarray]:
        _, age, _ = self.data
        train, val = np.arange(self.n)[: 3 * self.n // 4], np.arange(self.n)[3 * self.n // 4 :]
        return {
            "train": train,
            "val": val,
            "forget": train[age[train] <= 28],
            "retain": train[age[train] > 28],
            "retain_val": val[age[val] > 28],
        }

    def dataset(self, part: str) -> ArrayDataset:
        images, _, labels = self.data
        ids = self.ids[part]
        return ArrayDataset(images[ids], labels[ids], ids)

    def _train(self, part: str, val: str) -> StripesNet:
        model = StripesNet(self.seed)
        fit(model, self.dataset(part), self.dataset(val), FitConfig(epochs=150, lr=3e-3, batch_size=32, patience=15))
        return model.eval()

    @cached_property
    def original(self) -> StripesNet:
        return self._train("train", "val")

    @cached_property
    def retrained(self) -> StripesNet:
        return self._train("retain", "retain_val")

    def mae(self, model: nn.Module, part: str) -> float:
        data = self.dataset(part)
        return float(np.abs(predict(model, data) - data.targets.numpy()).mean())


class KilledAfterFirstJob(LocalExecutor):
    """An executor whose run is killed (KeyboardInterrupt) once its first job has come back; ``submitted``
    holds the number of jobs of each call, to see what a resumed run still had to do."""

    def __init__(self):
        super().__init__(progress=False)
        self.submitted = []

    def imap(self, function, items, shared=None, description="jobs"):
        items = list(items)
        self.submitted.append(len(items))
        for pair in super().imap(function, items, shared, description):
            yield pair
            raise KeyboardInterrupt
