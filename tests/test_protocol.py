import numpy as np
import pandas as pd
import pytest

from olvido.data import FORGET_GROUPS, ProtocolConfig, parse_forget, prepare_faces
from olvido.data.augment import apply_affine
from olvido.data.manifest import Manifest, manifest_images
from olvido.data.protocol import (
    augment_balance,
    filter_ages,
    forget_group_of,
    quality_filter,
    reduce_stratified,
    split_random,
)
from olvido.errors import OlvidoError


def test_reduction_keeps_each_age_share_within_rounding(synthetic_faces):
    table = synthetic_faces.table()
    reduced = reduce_stratified(table, 0.3, seed=0)
    before, after = table["age"].value_counts(), reduced["age"].value_counts()
    for age, n in before.items():
        assert after.get(age, 0) == int(np.floor(0.3 * n + 0.5))
    assert reduced["id"].is_unique and reduced["id"].isin(table["id"]).all()


def test_age_filter_is_inclusive():
    table = pd.DataFrame({"id": range(5), "age": [19, 20, 40, 60, 61]})
    assert filter_ages(table, 20, 60)["age"].tolist() == [20, 40, 60]


def test_split_is_disjoint_exhaustive_and_sized():
    table = pd.DataFrame({"id": np.arange(1003), "age": 30})
    split = split_random(table, 0.2, 0.2, seed=3)["split"]
    assert split.value_counts().to_dict() == {"train": 601, "val": 201, "test": 201}
    assert split.isin(["train", "val", "test"]).all()


def test_protocol_invariants(prepared):
    table = prepared.manifest.table
    originals = table[table["source_id"] == -1]
    assert originals["age"].between(20, 60).all() and table["age"].between(20, 60).all()
    assert table["id"].is_unique
    # augmentation: ages below 150 filled exactly to 150, others untouched, copies only in train
    train = table[table["split"] == "train"]
    per_age = train.groupby("age").size()
    per_age_originals = originals[originals["split"] == "train"].groupby("age").size()
    for age, n_original in per_age_originals.items():
        assert per_age[age] == max(150, n_original)
    copies = table[table["source_id"] != -1]
    assert (copies["split"] == "train").all()
    assert (copies["id"] >= len(prepared.faces)).all()  # copy ids never collide with source image ids
    sources = table.set_index("id").loc[copies["source_id"]]
    assert (sources["split"] == "train").all() and (sources["source_id"] == -1).all()
    assert (sources["age"].to_numpy() == copies["age"].to_numpy()).all()
    assert copies[["angle", "shift_x", "shift_y"]].abs().max().le([10, 0.1, 0.1]).all()
    assert copies["zoom"].between(0.8, 1.2).all() and copies["flip"].isin([0, 1]).all()


def test_augmentation_adds_nothing_to_ages_at_or_above_target():
    table = pd.DataFrame({"id": np.arange(400), "file": "f", "age": [30] * 200 + [40] * 150 + [50] * 50})
    table["split"] = "train"
    out = augment_balance(table, 150, ProtocolConfig().augment, seed=0)
    counts = out.groupby("age").size().to_dict()
    assert counts == {30: 200, 40: 150, 50: 150}
    assert (out.loc[out["age"] == 50, "source_id"] != -1).sum() == 100
    # sources are used evenly: each of the 50 originals gets exactly 2 copies
    assert out.loc[out["source_id"] != -1, "source_id"].value_counts().eq(2).all()


def test_identity_affine_returns_the_image_and_flip_mirrors(synthetic_faces):
    images = synthetic_faces.images[:4]
    zeros, ones = np.zeros(4), np.ones(4)
    np.testing.assert_array_equal(apply_affine(images, zeros, zeros, zeros, ones, zeros), images)
    np.testing.assert_array_equal(apply_affine(images, zeros, zeros, zeros, ones, ones), images[:, :, ::-1])


def test_augmented_pixels_are_rebuilt_from_the_manifest(prepared):
    images = prepared.images()
    table = prepared.manifest.table
    assert images.shape[0] == len(table)
    originals = (table["source_id"] == -1).to_numpy()
    np.testing.assert_array_equal(images[originals], prepared.faces.images[table.loc[originals, "id"]])
    copy = table[~originals].iloc[0]
    source = prepared.faces.images[[copy["source_id"]]]
    expected = apply_affine(source, *[np.array([copy[c]]) for c in ("angle", "shift_x", "shift_y", "zoom", "flip")])
    np.testing.assert_array_equal(images[copy.name], expected[0])


def test_forget_groups_are_disjoint_and_cover_20_to_60():
    ages = np.arange(20, 61)
    groups = forget_group_of(ages)
    assert (groups >= 0).all()
    for j, (low, high) in enumerate(FORGET_GROUPS):
        assert ages[groups == j].tolist() == list(range(low, high + 1))
    assert forget_group_of(np.array([19, 61])).tolist() == [-1, -1]


@pytest.mark.parametrize("spec", ["group:0", "group:4", "random:0.2", "random:10:3", "gender:1", "race:3"])
def test_forget_and_retain_are_disjoint_including_descendants(prepared, spec):
    manifest = prepared.manifest
    split = parse_forget(manifest, spec)
    table = manifest.table.set_index("id")
    retain = np.concatenate([split.retain_train, split.retain_val])
    assert not set(split.forget) & set(retain)
    assert not set(table.loc[retain, "source_id"]) & set(split.forget)  # no copy of a forgotten image stays
    assert (table.loc[split.forget, "source_id"] == -1).all()
    assert table.loc[split.forget, "split"].isin(["train", "val"]).all()
    # every train/val sample is either forgotten, a removed copy, or retained
    train_val = set(table.index[table["split"] != "test"])
    assert train_val == set(split.forget) | set(split.removed_copies) | set(retain)
    assert set(split.test) == set(table.index[table["split"] == "test"])


def test_test_set_is_independent_of_the_forget_choice(prepared):
    tests = {tuple(parse_forget(prepared.manifest, f"group:{j}").test) for j in range(5)}
    assert len(tests) == 1


def test_group_forget_set_selects_the_group_ages(prepared):
    split = parse_forget(prepared.manifest, "group:1")
    ages = prepared.manifest.table.set_index("id").loc[split.forget, "age"]
    assert ages.between(29, 36).all() and len(split.forget) > 0


def test_forget_by_ids_and_files(prepared, tmp_path):
    table = prepared.manifest.table
    candidates = table[(table["split"] != "test") & (table["source_id"] == -1)].head(5)
    by_ids = parse_forget(prepared.manifest, "ids:" + ",".join(map(str, candidates["id"])))
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(candidates["file"]) + "\n")
    by_files = parse_forget(prepared.manifest, f"files:@{listing}")
    assert sorted(by_ids.forget) == sorted(by_files.forget) == sorted(candidates["id"])


def test_forget_errors(prepared):
    manifest = prepared.manifest
    with pytest.raises(OlvidoError, match="unknown ids"):
        parse_forget(manifest, "ids:1,999999")
    test_id = manifest.table.loc[manifest.table["split"] == "test", "id"].iloc[0]
    with pytest.raises(OlvidoError, match="test samples or augmented copies"):
        parse_forget(manifest, f"ids:{test_id}")
    with pytest.raises(OlvidoError, match="expected 0..4"):
        parse_forget(manifest, "group:7")
    with pytest.raises(OlvidoError, match="expected group"):
        parse_forget(manifest, "colour:blue")
    with pytest.raises(OlvidoError, match="strictly between 0 and 1 or a whole number of images from 1 to"):
        parse_forget(manifest, "random:1.5")
    with pytest.raises(OlvidoError, match=r"forget amount 1000000\.0: expected"):
        parse_forget(manifest, "random:1000000")
    with pytest.raises(OlvidoError, match="unknown file names"):
        parse_forget(manifest, "files:nobody.jpg")


def test_random_requests_of_a_number_of_images(prepared):
    one, hundred = parse_forget(prepared.manifest, "random:1"), parse_forget(prepared.manifest, "random:100:2")
    assert len(one.forget) == 1 and one.spec == "random:1:0"
    assert len(hundred.forget) == 100 and hundred.spec == "random:100:2"
    assert parse_forget(prepared.manifest, "random:100:2").forget.tolist() == hundred.forget.tolist()
    assert len(parse_forget(prepared.manifest, "random:0.01").forget) > 1


def test_forget_group_outside_the_age_range_is_an_error(synthetic_faces, tmp_path):
    narrow = prepare_faces(synthetic_faces, ProtocolConfig(age_min=30, age_max=60), cache=tmp_path)
    with pytest.raises(OlvidoError, match="outside the manifest's ages 30-60"):
        parse_forget(narrow.manifest, "group:0")


def test_same_seed_same_hash_different_seed_different_hash(synthetic_faces, prepared, tmp_path):
    again = prepare_faces(synthetic_faces, ProtocolConfig(seed=0), cache=tmp_path)
    other = prepare_faces(synthetic_faces, ProtocolConfig(seed=1), cache=tmp_path)
    assert again.manifest.hash == prepared.manifest.hash
    assert other.manifest.hash != prepared.manifest.hash
    pd.testing.assert_frame_equal(again.manifest.table, prepared.manifest.table)


def test_manifest_round_trip_and_tamper_detection(prepared, tmp_path):
    path = prepared.manifest.save(tmp_path)
    loaded = Manifest.load(path)
    assert loaded.hash == prepared.manifest.hash
    assert (loaded.table["file"] == prepared.manifest.table["file"]).all()
    path.write_text(path.read_text().replace(",train,", ",test,", 1))
    with pytest.raises(OlvidoError, match="was changed"):
        Manifest.load(path)


def test_manifest_images_refuse_another_source(prepared):
    from olvido.data import make_synthetic_faces

    other = make_synthetic_faces(n=200, image_size=64, seed=5)
    with pytest.raises(OlvidoError, match="was made from"):
        manifest_images(prepared.manifest, other)


def test_quality_filter_removes_blurred_and_flat_images(synthetic_faces):
    images = synthetic_faces.images[:20].copy()
    images[3] = 128  # flat grey: no contrast, no edges
    images[7] = images[7].mean(axis=(0, 1), keepdims=True).astype(np.uint8) + np.uint8(1)
    table = synthetic_faces.table().head(20)
    kept, removed = quality_filter(table, images, min_sharpness=5.0, min_contrast=5.0)
    assert sorted(removed["id"]) == [3, 7] and len(kept) == 18
    assert set(removed["reason"]) <= {"blur", "low_contrast"}


def test_quality_filter_is_off_by_default_and_reported_when_on(synthetic_faces, tmp_path):
    off = prepare_faces(synthetic_faces, ProtocolConfig(), cache=tmp_path)
    from olvido.data.protocol import image_quality

    median = float(image_quality(synthetic_faces.images)["sharpness"].median())
    on = prepare_faces(
        synthetic_faces, ProtocolConfig(quality_filter=True, min_sharpness=median, min_contrast=0), cache=tmp_path
    )
    assert off.counts["quality_removed"] == 0
    assert on.counts["quality_removed"] == len(on.removed_by_quality) > 0
    assert on.counts["kept"] == off.counts["kept"] - on.counts["quality_removed"]
    assert (on.removed_by_quality["sharpness"] < median).all()


def test_bad_protocol_option_is_an_error():
    with pytest.raises(OlvidoError, match="reduce_fraction"):
        ProtocolConfig(reduce_fraction=0)
