"""The manifest: one table that says, for every sample of a prepared dataset, what it is and where it goes.

Columns: ``id, file, age, gender, race, split, source_id, angle, shift_x, shift_y, zoom, flip,
forget_group``. ``source_id`` is -1 for original images and the original's id for augmented copies,
whose pixels are rebuilt from the source with the stored affine parameters. The manifest hash covers
the table and the metadata (data source identity, image size, protocol options), so it names exactly
one dataset; every model, embedding and result downstream is keyed by it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from olvido.data.augment import PARAM_COLUMNS, apply_affine
from olvido.data.faceset import FaceSet
from olvido.data.protocol import NOT_AUGMENTED, ProtocolConfig, run_protocol
from olvido.errors import OlvidoError
from olvido.storage import atomic_write_json, atomic_write_text, cache_dir

COLUMNS = ("id", "file", "age", "gender", "race", "split", "source_id", *PARAM_COLUMNS, "forget_group")
_FLOAT_FORMAT = "%.6f"


@dataclass
class Manifest:
    table: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.table.columns]
        if missing:
            raise OlvidoError(f"manifest: missing columns {missing}; expected {list(COLUMNS)}")
        self.table = self.table[list(COLUMNS)].reset_index(drop=True)
        if not self.table["id"].is_unique:
            raise OlvidoError("manifest: column 'id' has duplicates; expected one row per sample")

    def to_csv_text(self) -> str:
        buffer = io.StringIO()
        self.table.to_csv(buffer, index=False, float_format=_FLOAT_FORMAT, lineterminator="\n")
        return buffer.getvalue()

    @cached_property
    def hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(self.meta, sort_keys=True).encode())
        digest.update(self.to_csv_text().encode())
        return digest.hexdigest()[:16]

    def rows(self, split: str | None = None, originals_only: bool = False) -> pd.DataFrame:
        table = self.table
        mask = np.ones(len(table), dtype=bool)
        if split is not None:
            mask &= (table["split"] == split).to_numpy()
        if originals_only:
            mask &= (table["source_id"] == NOT_AUGMENTED).to_numpy()
        return table[mask]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``manifest-<hash>.csv`` and its ``.json`` metadata atomically; return the CSV path."""
        folder = Path(folder)
        csv_path = folder / f"manifest-{self.hash}.csv"
        atomic_write_text(csv_path, self.to_csv_text())
        atomic_write_json(folder / f"manifest-{self.hash}.json", {"hash": self.hash, **self.meta})
        return csv_path

    @classmethod
    def load(cls, csv_path: str | os.PathLike) -> "Manifest":
        csv_path = Path(csv_path)
        meta_path = csv_path.with_suffix(".json")
        if not csv_path.exists() or not meta_path.exists():
            raise OlvidoError(f"{csv_path}: manifest not found (needs the .csv and its .json beside it)")
        meta = json.loads(meta_path.read_text())
        expected = meta.pop("hash", None)
        manifest = cls(pd.read_csv(csv_path, keep_default_na=False), meta)
        if expected != manifest.hash:
            raise OlvidoError(f"{csv_path}: content hash {manifest.hash} != recorded {expected}; the file was changed")
        return manifest


def manifest_images(manifest: Manifest, faces: FaceSet) -> np.ndarray:
    """Pixels of every manifest row, in row order: originals from ``faces``, copies rebuilt by their affine."""
    table = manifest.table
    if manifest.meta.get("source_id") != faces.source_id:
        raise OlvidoError(
            f"manifest {manifest.hash} was made from {manifest.meta.get('source_id')}, not {faces.source_id}"
        )
    if not faces.has_images:
        raise OlvidoError(
            f"manifest {manifest.hash}: this copy of the faces carries no pixels (FaceSet.without_images); "
            "expected the decoded faces"
        )
    augmented = (table["source_id"] != NOT_AUGMENTED).to_numpy()
    source = np.where(augmented, table["source_id"], table["id"]).astype(np.int64)
    images = faces.images[source]
    if augmented.any():
        params = {c: table.loc[augmented, c].to_numpy() for c in PARAM_COLUMNS}
        images[augmented] = apply_affine(images[augmented], **params)
    return images


@dataclass
class PreparedData:
    faces: FaceSet
    manifest: Manifest
    manifest_path: Path
    counts: dict[str, int]
    removed_by_quality: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def images(self) -> np.ndarray:
        return manifest_images(self.manifest, self.faces)


def prepare_faces(faces: FaceSet, config: ProtocolConfig, cache: str | os.PathLike | None = None) -> PreparedData:
    """Run the protocol on decoded faces and write the manifest into the cache."""
    result = run_protocol(faces.table(), faces.images, config)
    meta = {
        "source_id": faces.source_id,
        "source_kind": faces.source_kind,
        "image_size": faces.image_size,
        "protocol": config.to_dict(),
    }
    manifest = Manifest(result.table, meta)
    path = manifest.save(cache_dir(cache) / "manifests")
    return PreparedData(faces, manifest, path, result.counts, result.removed_by_quality)
