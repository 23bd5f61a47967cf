"""Data: UTKFace and synthetic faces, the thesis protocol, the manifest and forget sets."""

from __future__ import annotations

import functools
import os
import time

from olvido.data.faceset import FaceSet
from olvido.data.forget import ForgetSplit, parse_forget
from olvido.data.manifest import Manifest, PreparedData, manifest_images, prepare_faces
from olvido.data.protocol import FORGET_GROUPS, ProtocolConfig
from olvido.data.synthetic import make_synthetic_faces
from olvido.data.utkface import read_utkface
from olvido.errors import OlvidoError

SYNTHETIC_DEFAULT_N = 6000

__all__ = [
    "FORGET_GROUPS",
    "FaceSet",
    "ForgetSplit",
    "Manifest",
    "PreparedData",
    "ProtocolConfig",
    "load_faces",
    "make_synthetic_faces",
    "manifest_images",
    "parse_forget",
    "prepare_dataset",
    "read_utkface",
    "summarize",
]


@functools.lru_cache(maxsize=2)
def _synthetic_faces(n: int, image_size: int) -> FaceSet:
    """Generated once per process (a second each; nothing writes into a FaceSet's arrays)."""
    return make_synthetic_faces(n=n, image_size=image_size, seed=0)


def load_faces(
    data: str | os.PathLike | None = None,
    image_size: int = 64,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> FaceSet:
    """Faces from a UTKFace folder/archive, or synthetic ones for ``None``, ``"synthetic"`` or ``"synthetic:N"``."""
    if data is None or str(data).startswith("synthetic"):
        _, _, count = str(data or "synthetic").partition(":")
        try:
            n = int(count) if count else SYNTHETIC_DEFAULT_N
        except ValueError:
            raise OlvidoError(f"--data {data}: expected a path, 'synthetic' or 'synthetic:N'") from None
        if n < 100:
            raise OlvidoError(f"--data {data}: expected at least 100 synthetic images")
        return _synthetic_faces(n, image_size)
    return read_utkface(data, image_size=image_size, cache=cache, progress=progress)


def prepare_dataset(
    data: str | os.PathLike | None = None,
    config: ProtocolConfig | None = None,
    image_size: int = 64,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> PreparedData:
    """Read (or generate) the faces and run the thesis protocol; the manifest lands in the cache."""
    started = time.perf_counter()
    faces = load_faces(data, image_size=image_size, cache=cache, progress=progress)
    read_seconds = time.perf_counter() - started
    prepared = prepare_faces(faces, config or ProtocolConfig(), cache=cache)
    prepared.seconds.update(read=read_seconds, total=time.perf_counter() - started)
    return prepared


def summarize(prepared: PreparedData, data: str | os.PathLike | None = None) -> dict:
    """The JSON summary printed by ``olvido data prepare`` (keys documented in the README)."""
    manifest = prepared.manifest
    table = manifest.table
    originals = table[table["source_id"] == -1]
    groups = []
    for index, (low, high) in enumerate(FORGET_GROUPS):
        in_group = originals[originals["forget_group"] == index]
        if in_group["split"].isin(["train", "val"]).any():
            split = parse_forget(manifest, f"group:{index}").summary()
        else:  # a tiny or age-restricted dataset: nothing to forget in this group
            split = {"forget": 0, "removed_augmented_copies": 0, "retain_train": None, "retain_val": None}
        groups.append(
            {
                "group": index,
                "ages": f"{low}-{high}",
                "forget": split["forget"],
                "forget_train": int((in_group["split"] == "train").sum()),
                "forget_val": int((in_group["split"] == "val").sum()),
                "test": int((in_group["split"] == "test").sum()),
                "removed_augmented_copies": split["removed_augmented_copies"],
                "retain_train": split["retain_train"],
                "retain_val": split["retain_val"],
            }
        )
    removed = prepared.removed_by_quality
    return {
        "source": {
            "kind": prepared.faces.source_kind,
            "path": None if data is None else str(data),
            "id": prepared.faces.source_id,
            "image_size": prepared.faces.image_size,
        },
        "images_read": len(prepared.faces),
        "skipped": dict(prepared.faces.skipped),
        "skipped_files": dict(prepared.faces.skipped_files),
        "protocol": manifest.meta["protocol"],
        "counts": dict(prepared.counts),
        "quality_removed": {str(k): int(v) for k, v in removed["reason"].value_counts().items()},
        "forget_groups": groups,
        "age_histogram": {str(k): int(v) for k, v in originals["age"].value_counts().sort_index().items()},
        "manifest": {"hash": manifest.hash, "path": str(prepared.manifest_path), "rows": len(table)},
        "seconds": {k: round(v, 2) for k, v in prepared.seconds.items()},
    }
