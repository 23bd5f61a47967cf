import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from olvido.cli import main
from olvido.data.utkface import parse_filename, read_utkface
from olvido.errors import OlvidoError

MALFORMED = {
    "39_1_20170116174525125.jpg.chip.jpg": (39, 1, None),
    "61_1_20170109142408075.jpg.chip.jpg": (61, 1, None),
    "61_1_20170109150557335.jpg.chip.jpg": (61, 1, None),
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 0, 1),
    "55_0_0_20170116232725357jpg.chip.jpg": (55, 0, 0),
}


def test_parse_regular_names():
    labels = parse_filename("UTKFace/26_1_2_20170116174525125.jpg.chip.jpg")
    assert (labels.age, labels.gender, labels.race) == (26, 1, 2)
    assert parse_filename("116_0_0_20170120134921760.jpg.chip.jpg").age == 116


@pytest.mark.parametrize("name,expected", list(MALFORMED.items()))
def test_parse_the_five_malformed_utkface_names(name, expected):
    labels = parse_filename(name)
    assert (labels.age, labels.gender, labels.race) == expected


@pytest.mark.parametrize("name", ["face.jpg", "_1_2_2017.jpg", "abc_1_2_2017.jpg", "200_1_2_2017.jpg", "7.jpg"])
def test_parse_rejects_names_without_a_usable_age(name):
    with pytest.raises(ValueError, match="age"):
        parse_filename(name)


def _jpeg(seed: int, size: int = 40) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


GOOD = {f"{20 + i}_{i % 2}_{i % 5}_2017010100000{i:04d}.jpg.chip.jpg": _jpeg(i) for i in range(6)}
BAD = {
    "notes.txt": b"hello",  # not an image
    "face.jpg": _jpeg(99),  # no age in the name
    "33_0_1_20170101000000999.jpg.chip.jpg": b"\xff\xd8 not really a jpeg",  # undecodable
}


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    for name, data in {**GOOD, **BAD}.items():
        (folder / name).write_bytes(data)
    return folder


def _tar(path, files: dict[str, bytes], mode="w:gz"):
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_folder_reader_skips_by_reason_and_loses_nothing(image_folder, tmp_path):
    faces = read_utkface(image_folder, image_size=16, cache=tmp_path / "c", progress=False)
    assert len(faces) == len(GOOD)
    assert faces.skipped == {"bad_name": 1, "not_image": 1, "undecodable": 1}
    assert len(faces) + sum(faces.skipped.values()) == len(GOOD) + len(BAD)
    assert faces.images.shape == (6, 16, 16, 3) and faces.images.dtype == np.uint8
    assert list(faces.files) == sorted(GOOD)
    assert sorted(faces.ages.tolist()) == [20, 21, 22, 23, 24, 25]


def test_archive_reader_matches_folder_and_caches(image_folder, tmp_path):
    archive = _tar(tmp_path / "faces.tar.gz", {f"UTKFace/{n}": d for n, d in {**GOOD, **BAD}.items()})
    cache = tmp_path / "cache"
    first = read_utkface(archive, image_size=16, cache=cache, progress=False)
    folder = read_utkface(image_folder, image_size=16, cache=cache, progress=False)
    np.testing.assert_array_equal(first.images, folder.images)
    assert first.skipped == folder.skipped
    cached = list((cache / "images").glob("*.npz"))
    assert len(cached) == 2 and not list((cache / "images").glob(".*tmp"))
    again = read_utkface(archive, image_size=16, cache=cache, progress=False)  # served from the cache
    np.testing.assert_array_equal(again.images, first.images)
    assert again.skipped_files == first.skipped_files
    other_size = read_utkface(archive, image_size=8, cache=cache, progress=False)
    assert other_size.images.shape[1] == 8


@pytest.mark.parametrize("member", ["/etc/25_0_0_2017.jpg", "UTKFace/../../25_0_0_2017.jpg"])
def test_archive_with_unsafe_member_is_rejected_and_nothing_cached(tmp_path, member):
    archive = _tar(tmp_path / "evil.tar", {**{f"UTKFace/{n}": d for n, d in GOOD.items()}, member: _jpeg(1)}, "w")
    with pytest.raises(OlvidoError, match="absolute or '..' path"):
        read_utkface(archive, cache=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_bad_sources_give_one_clear_error(tmp_path):
    with pytest.raises(OlvidoError, match="no such file or folder"):
        read_utkface(tmp_path / "missing.tar.gz", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OlvidoError, match="folder is empty"):
        read_utkface(tmp_path / "empty", progress=False)
    no_images = _tar(tmp_path / "docs.tar.gz", {"README": b"x", "notes.txt": b"y"})
    with pytest.raises(OlvidoError, match="no readable UTKFace images"):
        read_utkface(no_images, cache=tmp_path / "c", progress=False)
    not_tar = tmp_path / "fake.tar.gz"
    not_tar.write_bytes(b"this is not an archive")
    with pytest.raises(OlvidoError, match="cannot open"):
        read_utkface(not_tar, progress=False)
    with pytest.raises(OlvidoError, match="image size"):
        read_utkface(not_tar, image_size=2, progress=False)


def test_cli_reports_errors_in_one_line_with_nonzero_exit(tmp_path, capsys):
    assert main(["data", "prepare", "--data", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("olvido: error:") and "nope" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "prepare", "--image-size", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_cli_warns_about_skipped_images(image_folder, tmp_path, capsys):
    for i in range(10):  # enough images of one age for the 30% reduction to keep some
        (image_folder / f"30_0_0_2017020100000{i:04d}.jpg.chip.jpg").write_bytes(_jpeg(100 + i))
    code = main(["-q", "--cache", str(tmp_path / "c"), "data", "prepare", "--data", str(image_folder), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    assert "olvido: warning: skipped 1 bad_name, 1 not_image, 1 undecodable" in captured.err
    summary = json.loads(captured.out)
    assert summary["images_read"] == 16 and summary["skipped"]["undecodable"] == 1


def test_cli_rejects_a_source_the_protocol_empties(image_folder, tmp_path, capsys):
    assert main(["-q", "--cache", str(tmp_path / "c"), "data", "prepare", "--data", str(image_folder)]) == 2
    assert "the protocol kept no images" in capsys.readouterr().err
