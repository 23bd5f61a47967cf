"""The in-memory form of a face data source: decoded images plus their UTKFace labels."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MISSING = -1  # gender/race not given in the file name


@dataclass
class FaceSet:
    """Decoded square RGB images and labels, one row per readable image, sorted by file name.

    ``ids`` are positions ``0..n-1``: stable for a given source and the key every later table uses.
    ``skipped`` counts the files that were not read, by reason; ``skipped_files`` names them.
    """

    images: np.ndarray  # uint8 [n, size, size, 3]
    files: np.ndarray  # str [n], path relative to the source
    ages: np.ndarray  # int16 [n]
    genders: np.ndarray  # int8 [n], MISSING when absent
    races: np.ndarray  # int8 [n], MISSING when absent
    source_id: str
    source_kind: str  # "utkface" or "synthetic"
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_files: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.files)
        if self.images.ndim != 4 or self.images.shape[0] != n or self.images.shape[3] != 3:
            raise ValueError(f"images must have shape [n={n}, size, size, 3], got {self.images.shape}")
        if self.images.shape[1] != self.images.shape[2]:
            raise ValueError(f"images must be square, got {self.images.shape[1:3]}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        for name in ("ages", "genders", "races"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} images")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def has_images(self) -> bool:
        return len(self.images) == len(self.files)

    def without_images(self) -> FaceSet:
        """The same labels with no pixels (an empty array of the same image shape): what travels to workers
        that train on cached inputs and must not ship every decoded face with each job."""
        other = copy.copy(self)
        other.images = self.images[:0]
        return other

    def table(self) -> pd.DataFrame:
        """One row per image: id, file, age, gender, race."""
        return pd.DataFrame(
            {
                "id": np.arange(len(self), dtype=np.int64),
                "file": self.files.astype(str),
                "age": self.ages.astype(np.int64),
                "gender": self.genders.astype(np.int64),
                "race": self.races.astype(np.int64),
            }
        )
