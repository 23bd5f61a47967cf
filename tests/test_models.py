import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from olvido.checkpoint import load_checkpoint, save_checkpoint
from olvido.data import parse_forget
from olvido.errors import OlvidoError
from olvido.experiments import workspace as workspace_module
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.models.backbones import build_backbone, split_for_scope
from olvido.models.ensemble import Ensemble
from olvido.models.heads import ThesisHead
from olvido.models.pretrain import PretrainConfig, pretrain_backbone, pretraining_pool
from olvido.training import ArrayDataset, FitConfig, fit, model_mae, predict

from helpers import FAST_FIT, KilledAfterFirstJob, needs_weights


@pytest.fixture(scope="module")
def workspace(prepared, tmp_path_factory, share_features):
    # no mirror views: the session's features serve (mirroring has its own test on a small set below)
    return Workspace(
        prepared,
        ModelConfig(init="imagenet", ensemble=1, mirror=False),
        fit_config=FAST_FIT,
        cache=share_features(tmp_path_factory.mktemp("ws"), models=False),  # tests of training: its own
        progress=False,
    )


@pytest.fixture(scope="module")
def small_prepared(synthetic_faces, tmp_path_factory):
    """The session's faces under a protocol that augments each age to 10 train images, not 150 (about 580
    manifest rows instead of 6,300): for tests of a scope's or of mirroring's mechanics, whose cost is
    running the frozen part on, and training on, every row."""
    from olvido.data import ProtocolConfig, prepare_faces

    return prepare_faces(synthetic_faces, ProtocolConfig(seed=0, balance_target=10), tmp_path_factory.mktemp("small"))


def test_thesis_head_shape_and_range():
    torch.manual_seed(0)
    head = ThesisHead(1280).eval()
    out = head(torch.randn(7, 1280) * 100)  # large inputs saturate the sigmoid: the range is closed
    assert out.shape == (7,)
    assert (out >= 0).all() and (out <= 60).all()
    assert isinstance(ThesisHead(512).projection, torch.nn.Identity)


@needs_weights
def test_training_beats_the_mean_predictor_by_a_wide_margin(workspace):
    trained = workspace.original(seed=0)
    test = workspace.split_ids("test")
    mean_mae = np.abs(workspace.ages(test) - workspace.ages(workspace.split_ids("train")).mean()).mean()
    mae = workspace.evaluate(trained.model)["test_mae"]
    assert mae < 0.6 * mean_mae, (mae, mean_mae)


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] * 5 + 30).detach()
    noisy = y + torch.randn(256) * 20  # train labels are mostly noise: validation gets worse with overfitting
    train, val = ArrayDataset(x[:128], noisy[:128]), ArrayDataset(x[128:], y[128:])
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1), torch.nn.Flatten(0))
    result = fit(model, train, val, FitConfig(epochs=60, batch_size=16, lr=1e-2, patience=5))
    val_maes = [h["val_mae"] for h in result.history]
    assert result.best_epoch == int(np.argmin(val_maes)) + 1
    assert len(result.history) == result.best_epoch + 5 < 60  # stopped after 5 epochs without improvement
    assert model_mae(model, val) == pytest.approx(min(val_maes), rel=1e-5)


def test_fit_rejects_broadcasting_shapes():
    model = torch.nn.Linear(3, 1)  # returns (n, 1)
    data = ArrayDataset(torch.randn(8, 3), torch.zeros(8))
    with pytest.raises(ValueError, match="shape"):
        fit(
            model,
            data,
            config=FitConfig(epochs=1, patience=None),
            loss_fn=lambda p, t: workspace_module.fit.__globals__["l1_loss"](p.unsqueeze(-1), t),
        )


@needs_weights
def test_cache_hit_trains_nothing(workspace, monkeypatch):
    first = workspace.original(seed=0)

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(workspace_module, "fit", forbidden)
    again = workspace.original(seed=0)
    assert again.from_cache and again.path == first.path
    ids = workspace.split_ids("test")
    np.testing.assert_array_equal(workspace.predict(again.model, ids), workspace.predict(first.model, ids))


@needs_weights
def test_a_killed_batch_of_trainings_keeps_what_came_back(workspace, monkeypatch):
    jobs = [workspace.original_job(seed) for seed in (40, 41, 42)]
    paths = [workspace._training(j["train_ids"], j["val_ids"], j["seed"])[1] for j in jobs]
    killed = KilledAfterFirstJob()
    with pytest.raises(KeyboardInterrupt):
        workspace.ensure_trained(jobs, killed)
    assert [path.exists() for path in paths] == [True, False, False]
    resumed = KilledAfterFirstJob()
    with pytest.raises(KeyboardInterrupt):
        workspace.ensure_trained(jobs, resumed)
    assert resumed.submitted == [2] and sum(path.exists() for path in paths) == 2  # the stored one not again


@needs_weights
def test_a_workspace_sent_to_workers_carries_its_inputs_as_numpy(workspace):
    sent = workspace.for_workers()
    state = sent.__getstate__()
    assert isinstance(state["inputs"], np.ndarray)  # what Ray's object store shares without a copy
    arrived = pickle.loads(pickle.dumps(sent))
    assert isinstance(arrived.inputs, torch.Tensor) and torch.equal(arrived.inputs, workspace.inputs)
    assert not arrived.progress
    ids = workspace.split_ids("test")[:50]
    model = workspace.new_model(seed=3)
    np.testing.assert_array_equal(arrived.predict(model, ids), workspace.predict(model, ids))
    # and no decoded faces: workers use the cached inputs; asking them for pixels is a clear error
    assert len(arrived.prepared.faces.images) == 0 and workspace.prepared.faces.has_images
    assert arrived.architecture == workspace.architecture
    with pytest.raises(OlvidoError, match="carries no pixels"):
        arrived.prepared.images()


@needs_weights
def test_seeded_training_gives_identical_predictions_twice(prepared, tmp_path, share_features):
    runs = []
    # the first run extracts its features afresh, the second reuses the session's: extraction is seeded too
    for cache in (tmp_path / "a", share_features(tmp_path / "b", models=False)):
        ws = Workspace(
            prepared,
            ModelConfig(init="imagenet", ensemble=1, mirror=False),
            fit_config=FitConfig(epochs=3, patience=None),
            cache=cache,
            progress=False,
        )
        runs.append(ws.predict(ws.original(seed=4).model, ws.split_ids("test")))
    np.testing.assert_array_equal(runs[0], runs[1])


@needs_weights
@pytest.mark.parametrize("mirror", [False, True])
def test_head_scope_on_cached_embeddings_equals_backbone_plus_head_on_images(
    workspace, small_prepared, mirror, tmp_path
):
    if mirror:  # both views' embeddings cached, the head averaged over them: on images, the same function
        workspace = Workspace(
            small_prepared,
            ModelConfig(init="imagenet", ensemble=1, mirror=True),
            fit_config=FAST_FIT,
            cache=tmp_path,
            progress=False,
        )
        assert workspace.inputs.shape[1] == 2  # [n, 2 views, width]
    model = workspace.original(seed=0).model
    ids = workspace.split_ids("test")[:50]
    on_embeddings = workspace.predict(model, ids)
    images = workspace.prepared.images()[workspace.rows(ids)]
    on_images = predict(workspace.deployable(model), ArrayDataset(torch.from_numpy(images), np.zeros(len(ids))))
    np.testing.assert_allclose(on_embeddings, on_images, rtol=1e-5, atol=1e-4)


@needs_weights
def test_last_scope_trains_on_cached_activations_and_matches_images(small_prepared, tmp_path):
    prepared = small_prepared
    ws = Workspace(
        prepared,
        ModelConfig(init="imagenet", scope="last", ensemble=1),
        fit_config=FitConfig(epochs=1, patience=None),
        cache=tmp_path,
        progress=False,
    )
    assert ws.inputs.ndim == 4  # the stem's activations, not pooled features
    model = ws.original(seed=0).model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 1_000_000  # last stage + head
    ids = ws.split_ids("val")[:20]
    images = prepared.images()[ws.rows(ids)]
    on_images = predict(ws.deployable(model), ArrayDataset(torch.from_numpy(images), np.zeros(len(ids))))
    np.testing.assert_allclose(ws.predict(model, ids), on_images, rtol=1e-4, atol=1e-3)


@needs_weights
def test_retrained_model_never_sees_the_forget_set(workspace, monkeypatch):
    forget = parse_forget(workspace.prepared.manifest, "group:0")
    seen = []
    original_dataset = workspace.dataset

    def spy(ids, targets=None):
        seen.append(np.asarray(ids))
        return original_dataset(ids, targets)

    monkeypatch.setattr(workspace, "dataset", spy)
    workspace.retrained(forget, seed=7)
    used = np.concatenate(seen)
    assert not np.intersect1d(used, forget.forget).size
    assert not np.intersect1d(used, forget.removed_copies).size


def test_pretraining_pool_is_disjoint_from_the_protocol(prepared):
    pool = pretraining_pool(prepared.faces, prepared.manifest)
    table = prepared.manifest.table
    assert not np.intersect1d(pool, table["id"]).size
    assert not np.intersect1d(pool, table["source_id"]).size
    assert len(pool) + prepared.counts["reduced"] == len(prepared.faces)


def test_pretraining_pool_assertion_fires_on_overlap(prepared):
    from olvido.data.manifest import Manifest

    pool = pretraining_pool(prepared.faces, prepared.manifest)
    table = prepared.manifest.table.copy()
    table.loc[table.index[0], "id"] = pool[0]  # smuggle a pool image into the manifest
    with pytest.raises(AssertionError, match="overlaps"):
        pretraining_pool(prepared.faces, Manifest(table, prepared.manifest.meta))


@needs_weights
def test_pretraining_is_cached_and_loadable(prepared, tmp_path):
    config = PretrainConfig(epochs=1, batch_size=128)
    path, report = pretrain_backbone(prepared.faces, prepared.manifest, config, cache=tmp_path, progress=False)
    assert report["pool"] == len(pretraining_pool(prepared.faces, prepared.manifest))
    assert report["val_mae"] < 25
    again, _ = pretrain_backbone(prepared.faces, prepared.manifest, config, cache=tmp_path, progress=False)
    assert again == path
    backbone = build_backbone("mobilenet_v2", path)  # the checkpoint is a local-weights source
    state, _ = load_checkpoint(path)
    for key, value in backbone.backbone_state().items():
        torch.testing.assert_close(value, state[key])


@needs_weights
def test_checkpoint_round_trip_and_mismatch_errors(workspace, prepared, synthetic_faces, tmp_path):
    trained = workspace.original(seed=0)
    loaded = workspace.load(trained.path)
    ids = workspace.split_ids("val")
    np.testing.assert_array_equal(workspace.predict(loaded.model, ids), workspace.predict(trained.model, ids))

    from olvido.data import ProtocolConfig, prepare_faces

    other_data = prepare_faces(synthetic_faces, ProtocolConfig(seed=1), cache=tmp_path)
    model_config = workspace.model_config
    other_ws = Workspace(other_data, model_config, cache=workspace.cache, progress=False)
    with pytest.raises(OlvidoError, match="manifest"):
        other_ws.load(trained.path)
    bigger = Workspace(prepared, replace(model_config, ensemble=2), cache=workspace.cache, progress=False)
    with pytest.raises(OlvidoError, match="architecture"):
        bigger.load(trained.path)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(OlvidoError, match="not a readable checkpoint"):
        workspace.load(broken)


class Evil:  # any non-tensor object: unpickling it would run arbitrary code paths
    pass


def test_checkpoints_refuse_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "olvido-checkpoint-1", "state_dict": {}, "meta": Evil()}, path)
    with pytest.raises(OlvidoError):
        load_checkpoint(path)
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(2)}, {"kind": "x"})
    state, meta = load_checkpoint(tmp_path / "ok.pt", expect={"kind": "x"})
    assert meta == {"kind": "x"} and torch.equal(state["w"], torch.ones(2))
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf"])
def test_any_registered_torchvision_backbone_splits_for_every_scope(name):
    backbone = build_backbone(name, "none")
    images = torch.rand(2, 3, 64, 64)
    expected = None
    for scope in ("head", "last", "all"):
        frozen, body = split_for_scope(backbone, scope)
        frozen.eval(), body.eval()
        with torch.no_grad():
            features = body(frozen(images))
        assert features.shape == (2, backbone.feature_dim)
        expected = features if expected is None else expected
        torch.testing.assert_close(features, expected)


def test_backbone_errors(tmp_path):
    with pytest.raises(OlvidoError, match="no registered family"):
        build_backbone("alexnet", "none")
    with pytest.raises(OlvidoError, match="no such checkpoint"):
        build_backbone("resnet18", tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(OlvidoError, match="does not fit"):
        build_backbone("resnet18", wrong)
    right = tmp_path / "resnet18.pt"
    reference = build_backbone("resnet18", "none")
    torch.save(reference.network.state_dict(), right)
    loaded = build_backbone("resnet18", right)
    torch.testing.assert_close(loaded.network.layer4[0].conv1.weight, reference.network.layer4[0].conv1.weight)


def test_ensemble_averages_members():
    members = [torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0)) for _ in range(3)]
    x = torch.randn(5, 2)
    expected = torch.stack([m(x) for m in members]).mean(0)
    torch.testing.assert_close(Ensemble(members)(x), expected)


@needs_weights
def test_all_scope_trains_end_to_end_on_images(small_prepared, tmp_path):
    prepared = small_prepared
    ws = Workspace(
        prepared,
        ModelConfig(init="imagenet", scope="all", ensemble=1),
        fit_config=FitConfig(epochs=1, batch_size=32, lr=1e-4, patience=None),
        cache=tmp_path,
        progress=False,
    )
    assert ws.inputs.dtype == torch.uint8 and ws.inputs.shape[1:] == (64, 64, 3)  # images: nothing frozen
    train, val = ws.split_ids("train")[:128], ws.split_ids("val")[:32]
    model = ws.train(train, val, seed=0).model
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any("body" in name for name in trainable) and any("head" in name for name in trainable)
    ids = ws.split_ids("test")[:8]
    on_images = predict(
        ws.deployable(model), ArrayDataset(torch.from_numpy(prepared.images()[ws.rows(ids)]), np.zeros(8))
    )
    np.testing.assert_allclose(ws.predict(model, ids), on_images, rtol=1e-5, atol=1e-4)
