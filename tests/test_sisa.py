"""SISA: the original epoch schedule and costs, exactness of a deletion, one-line errors, resumption."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from olvido.data import parse_forget
from olvido.data.protocol import NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.experiments.sisa import Sisa, SisaConfig
from olvido.training import FitConfig

from helpers import KilledAfterFirstJob, needs_weights, small_workspace

TINY = SisaConfig(shards=2, slices=3, epochs=4)


@pytest.fixture(scope="module")
def workspace(prepared, tmp_path_factory, share_features):
    return small_workspace(
        prepared, share_features(tmp_path_factory.mktemp("sisa")), FitConfig(epochs=4, batch_size=128, lr=2e-3)
    )


def test_the_epoch_schedule_gives_one_model_s_sample_passes():
    assert SisaConfig(slices=4, epochs=20).slice_epochs() == [8, 8, 8, 8]
    for slices, epochs in [(4, 20), (3, 4), (5, 7), (1, 9)]:
        schedule = SisaConfig(slices=slices, epochs=epochs).slice_epochs()
        # slice r trains on (r+1)/R of the shard: the passes over the shard add up to about e
        passes = sum(e * (r + 1) / slices for r, e in enumerate(schedule))
        assert abs(passes - epochs) <= slices / 2, (slices, epochs, schedule)
    assert SisaConfig(shards=5, slices=4).expected_deletion_fraction() == pytest.approx(0.15)
    assert SisaConfig(shards=4, slices=4).expected_deletion_fraction() == pytest.approx(9 / 48)


def test_bad_sisa_configs_are_one_line_errors():
    with pytest.raises(OlvidoError, match="SISA shards 0: expected at least 1"):
        SisaConfig(shards=0)
    with pytest.raises(OlvidoError, match="SISA aggregation 'vote': expected one of mean, median"):
        SisaConfig(aggregation="vote")


def _train_originals(workspace, count: int, seed: int) -> list[int]:
    table = workspace.prepared.manifest.table
    ids = table.loc[(table["split"] == "train") & (table["source_id"] == NOT_AUGMENTED), "id"].to_numpy()
    return sorted(np.random.default_rng(seed).choice(ids, size=count, replace=False).tolist())


@needs_weights
def test_placement_depends_on_the_image_alone_and_copies_follow_their_source(workspace):
    sisa = Sisa(workspace, TINY)
    table = workspace.prepared.manifest.table
    copies = table[table["source_id"] != NOT_AUGMENTED]
    assert len(copies)
    shard, slice_ = sisa.placement(copies["id"].to_numpy())
    source_shard, source_slice = sisa.placement(copies["source_id"].to_numpy())
    assert np.array_equal(shard, source_shard) and np.array_equal(slice_, source_slice)
    train = workspace.split_ids("train")
    full, part = sisa.plan(train), sisa.plan(train[::2])
    for s in range(TINY.shards):
        assert set(part[s][-1]) == set(full[s][-1]) & set(train[::2])
        assert all(set(full[s][r]) < set(full[s][r + 1]) for r in range(TINY.slices - 1))
    sizes = [len(full[s][-1]) for s in range(TINY.shards)]
    assert sum(sizes) == len(train) and min(sizes) > 0.4 * len(train)


@needs_weights
def test_a_deletion_equals_training_from_scratch_without_the_deleted_images(workspace):
    sisa = Sisa(workspace, TINY)
    full = sisa.train()
    assert full.trained_slices == full.total_slices == TINY.shards * TINY.slices
    assert sisa.train().trained_slices == 0  # all cached
    split = parse_forget(workspace.prepared.manifest, "ids:" + ",".join(map(str, _train_originals(workspace, 1, 0))))
    after = sisa.forget(split)
    assert 0 < after.trained_slices < after.total_slices  # one shard's suffix, nothing else
    assert 0 < after.fraction < 1
    test = workspace.split_ids("test")
    deleted_predictions = workspace.predict(after.model, test)
    assert not np.allclose(deleted_predictions, workspace.predict(full.model, test))
    # from scratch, on the remaining data only, in a store of its own; the deletion's store is untouched
    scratch = Sisa(workspace, TINY, store=Path(workspace.cache) / "sisa-scratch").fit(split.retain_train)
    assert scratch.trained_slices == scratch.total_slices
    assert sisa.fit(split.retain_train).trained_slices == 0
    np.testing.assert_allclose(workspace.predict(scratch.model, test), deleted_predictions, atol=1e-5)
    low, high = workspace.label_range
    assert deleted_predictions.min() >= low and deleted_predictions.max() <= high


@needs_weights
def test_deleting_what_sisa_never_trained_on_fails_in_one_line_and_writes_nothing(workspace):
    sisa = Sisa(workspace, TINY)
    sisa.train()
    before = sorted((Path(workspace.cache) / "sisa").iterdir())
    validation = workspace.prepared.manifest.table
    val_id = int(
        validation.loc[(validation["split"] == "val") & (validation["source_id"] == NOT_AUGMENTED)].iloc[0]["id"]
    )
    with pytest.raises(OlvidoError, match=r"are not train images; expected ids of train-split originals"):
        sisa.forget(parse_forget(workspace.prepared.manifest, f"ids:{val_id}"))
    test_id = int(workspace.split_ids("test")[0])
    with pytest.raises(OlvidoError, match="test samples or augmented copies"):
        sisa.forget(parse_forget(workspace.prepared.manifest, f"ids:{test_id}"))
    assert sorted((Path(workspace.cache) / "sisa").iterdir()) == before


@needs_weights
def test_a_killed_deletion_resumes_and_ends_with_the_same_model(workspace):
    config = SisaConfig(shards=3, slices=2, epochs=3, seed=1)
    ids = _train_originals(workspace, 12, 1)  # about four per shard: every shard retrains
    split = parse_forget(workspace.prepared.manifest, "ids:" + ",".join(map(str, ids)))
    Sisa(workspace, config).train()
    killed = Sisa(workspace, config, executor=KilledAfterFirstJob())
    with pytest.raises(KeyboardInterrupt):
        killed.forget(split)
    resumed = Sisa(workspace, config, executor=KilledAfterFirstJob())
    with pytest.raises(KeyboardInterrupt):
        resumed.forget(split)
    assert killed.executor.submitted == [3] and resumed.executor.submitted == [2]  # the stored shard: not again
    done = Sisa(workspace, config).forget(split)
    assert 1 <= done.trained_slices <= config.slices  # the last shard's changed suffix only
    test = workspace.split_ids("test")
    shutil.rmtree(Path(workspace.cache) / "sisa")
    scratch = Sisa(workspace, config).fit(split.retain_train)
    np.testing.assert_allclose(workspace.predict(scratch.model, test), workspace.predict(done.model, test), atol=1e-5)
