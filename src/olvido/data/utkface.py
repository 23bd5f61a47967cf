"""UTKFace reader: a folder of images or a .tar/.tar.gz archive, read in place (never extracted).

Labels come from file names ``{age}_{gender}_{race}_{datetime}.jpg.chip.jpg``. Age is required; gender
and race are kept when present (five UTKFace names are malformed and lose one of them, never the age).
Images are decoded once, centre-cropped to a square, resized to ``image_size`` and cached as one
``.npz`` keyed by the source's identity and the size.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from olvido.data.faceset import MISSING, FaceSet
from olvido.errors import OlvidoError
from olvido.storage import atomic_save_npz, cache_dir, file_sha256, stable_hash

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_AGE = 130
READER_VERSION = 1  # bump when decoding changes, so old caches are not reused

SKIP_NOT_IMAGE = "not_image"
SKIP_BAD_NAME = "bad_name"
SKIP_UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class FaceLabels:
    age: int
    gender: int | None
    race: int | None


def parse_filename(name: str) -> FaceLabels:
    """Labels from a UTKFace file name; raises ``ValueError`` saying why a name cannot be used.

    The age is the integer before the first ``_``. The gender (0/1) and race (0-4) follow when the name
    has them; a name with only three fields (``age_gender_datetime``) has lost its race.
    """
    base = PurePosixPath(name).name
    fields = base.split("_")
    if len(fields) < 2 or not fields[0].isdigit():
        raise ValueError(f"{base!r}: expected '{{age}}_{{gender}}_{{race}}_{{datetime}}.jpg', no leading age")
    age = int(fields[0])
    if not 0 <= age <= MAX_AGE:
        raise ValueError(f"{base!r}: age {age} outside 0..{MAX_AGE}")
    gender = int(fields[1]) if len(fields) >= 3 and fields[1] in ("0", "1") else None
    race = int(fields[2]) if len(fields) >= 4 and fields[2] in ("0", "1", "2", "3", "4") else None
    return FaceLabels(age=age, gender=gender, race=race)


def decode_square(data: bytes, size: int) -> np.ndarray:
    """Decode image bytes to a uint8 [size, size, 3] array (centre square crop, then resize)."""
    with Image.open(io.BytesIO(data)) as image:
        # Let the JPEG decoder scale down by a power of two first: several times faster, same detail
        # at the sizes we keep.
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
        width, height = image.size
        side = min(width, height)
        if width != height:
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        if side != size:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _is_unsafe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]


def _iter_archive(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(member name, bytes)`` for a tar archive's files in one streaming pass (bytes is None
    for links and devices). An unsafe member name aborts the read before anything is written."""
    try:
        archive = tarfile.open(path, "r|*")
    except (tarfile.TarError, OSError) as error:
        raise OlvidoError(f"{path}: cannot open as a .tar/.tar.gz archive ({error})") from None
    with archive:
        try:
            for member in archive:
                if _is_unsafe_member(member.name):
                    raise OlvidoError(
                        f"{path}: member {member.name!r} has an absolute or '..' path; "
                        "expected only relative paths inside the archive"
                    )
                if member.isdir():
                    continue
                handle = archive.extractfile(member) if member.isfile() else None
                yield member.name, handle.read() if handle else None
        except (tarfile.TarError, EOFError, OSError) as error:
            raise OlvidoError(f"{path}: the archive is damaged ({error})") from None


def _iter_folder(path: Path) -> Iterator[tuple[str, bytes | None]]:
    for file in sorted(path.rglob("*")):
        if file.is_dir():
            continue
        name = file.relative_to(path).as_posix()
        yield name, file.read_bytes() if file.is_file() and not file.is_symlink() else None


def source_identity(path: Path) -> str:
    """What a source's cache key depends on: the archive's bytes, or a folder's file names/sizes/times."""
    if path.is_file():
        return "sha256:" + file_sha256(path)
    listing = [
        (f.relative_to(path).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
        for f in sorted(path.rglob("*"))
        if f.is_file()
    ]
    return "folder:" + stable_hash(listing, length=64)


def _check_source(path: Path) -> None:
    if not path.exists():
        raise OlvidoError(f"{path}: no such file or folder; expected a UTKFace folder or .tar/.tar.gz archive")
    if path.is_dir() and not any(path.iterdir()):
        raise OlvidoError(f"{path}: the folder is empty; expected UTKFace images such as 25_0_1_20170116174525125.jpg")


def read_utkface(
    path: str | os.PathLike,
    image_size: int = 64,
    cache: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FaceSet:
    """Read every UTKFace image of a folder or archive; skipped files are counted by reason, never lost."""
    path = Path(path)
    _check_source(path)
    if not 8 <= image_size <= 1024:
        raise OlvidoError(f"image size {image_size}: expected an integer in 8..1024")
    identity = source_identity(path)
    key = stable_hash({"source": identity, "size": image_size, "reader": READER_VERSION})
    cache_file = cache_dir(cache) / "images" / f"utkface-{image_size}px-{key}.npz"
    if use_cache and cache_file.exists():
        return _load_cached(cache_file, identity)
    faces = _decode_all(path, image_size, identity, progress)
    if use_cache:
        atomic_save_npz(
            cache_file,
            images=faces.images,
            files=faces.files,
            ages=faces.ages,
            genders=faces.genders,
            races=faces.races,
            skipped_reason=np.array([r for r, names in faces.skipped_files.items() for _ in names], dtype=str),
            skipped_name=np.array([n for names in faces.skipped_files.values() for n in names], dtype=str),
        )
    return faces


def _decode_all(path: Path, image_size: int, identity: str, progress: bool) -> FaceSet:
    entries = _iter_archive(path) if path.is_file() else _iter_folder(path)
    files, ages, genders, races, images = [], [], [], [], []
    skipped: dict[str, list[str]] = {}
    for name, data in tqdm(entries, desc=f"decoding {path.name}", unit="img", disable=not progress):
        reason = None
        if data is None or not name.lower().endswith(IMAGE_SUFFIXES):
            reason = SKIP_NOT_IMAGE
        else:
            try:
                labels = parse_filename(name)
            except ValueError:
                reason = SKIP_BAD_NAME
            else:
                try:
                    pixels = decode_square(data, image_size)
                except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                    reason = SKIP_UNDECODABLE
        if reason:
            skipped.setdefault(reason, []).append(name)
            continue
        files.append(name)
        ages.append(labels.age)
        genders.append(MISSING if labels.gender is None else labels.gender)
        races.append(MISSING if labels.race is None else labels.race)
        images.append(pixels)
    if not files:
        counts = ", ".join(f"{len(v)} {k}" for k, v in skipped.items()) or "no files"
        raise OlvidoError(
            f"{path}: no readable UTKFace images ({counts}); expected files like 25_0_1_20170116174525125.jpg"
        )
    order = np.argsort(np.array(files, dtype=str), kind="stable")
    return FaceSet(
        images=np.stack(images)[order],
        files=np.array(files, dtype=str)[order],
        ages=np.array(ages, dtype=np.int16)[order],
        genders=np.array(genders, dtype=np.int8)[order],
        races=np.array(races, dtype=np.int8)[order],
        source_id=identity,
        source_kind="utkface",
        skipped={reason: len(names) for reason, names in sorted(skipped.items())},
        skipped_files={reason: sorted(names) for reason, names in sorted(skipped.items())},
    )


def _load_cached(cache_file: Path, identity: str) -> FaceSet:
    with np.load(cache_file, allow_pickle=False) as stored:
        skipped_files: dict[str, list[str]] = {}
        for reason, name in zip(stored["skipped_reason"].tolist(), stored["skipped_name"].tolist()):
            skipped_files.setdefault(reason, []).append(name)
        return FaceSet(
            images=stored["images"],
            files=stored["files"],
            ages=stored["ages"],
            genders=stored["genders"],
            races=stored["races"],
            source_id=identity,
            source_kind="utkface",
            skipped={reason: len(names) for reason, names in skipped_files.items()},
            skipped_files=skipped_files,
        )
