"""The thesis's data protocol as small seeded pure functions over sample tables.

A sample table is a DataFrame with one row per image (columns ``id, file, age, gender, race``);
each step takes a table and returns a new one. ``run_protocol`` chains them in the thesis's order:
stratified reduction -> age filter -> (optional) quality filter -> random split -> balance augmentation.

Conventions (all documented in the README):
- reduction keeps ``floor(fraction * n_age + 0.5)`` images of every age (round half up);
- split sizes: ``round(0.2 n)`` validation, ``round(0.2 n)`` test, the rest train;
- forget age groups: [20-28], (28-36], (36-44], (44-52], (52-60], i.e. 20..28, 29..36, 37..44, 45..52,
  53..60 inclusive: disjoint, covering 20-60, the first one 9 ages wide (see FORGET_GROUPS);
- every step draws from its own random stream ``default_rng([seed, step])``, so changing one step's
  options never reshuffles another's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from olvido.data.augment import PARAM_COLUMNS, AugmentLimits, sample_params
from olvido.errors import OlvidoError

FORGET_GROUPS: tuple[tuple[int, int], ...] = ((20, 28), (29, 36), (37, 44), (45, 52), (53, 60))
NO_GROUP = -1
NOT_AUGMENTED = -1

_STEP_REDUCE, _STEP_SPLIT, _STEP_AUGMENT = 1, 2, 3


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


@dataclass(frozen=True)
class ProtocolConfig:
    """Every choice the protocol makes; part of the manifest hash."""

    seed: int = 0
    reduce_fraction: float = 0.3
    age_min: int = 20
    age_max: int = 60
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    balance_target: int = 150
    augment: AugmentLimits = field(default_factory=AugmentLimits)
    quality_filter: bool = False
    min_sharpness: float = 40.0  # variance of the Laplacian of the grey 64 px image (0-255 scale)
    min_contrast: float = 16.0  # standard deviation of the grey image

    def __post_init__(self) -> None:
        checks = {
            "reduce_fraction": 0 < self.reduce_fraction <= 1,
            "age_min/age_max": 0 <= self.age_min <= self.age_max,
            "val_fraction/test_fraction": 0 < self.val_fraction
            and 0 < self.test_fraction
            and self.val_fraction + self.test_fraction < 1,
            "balance_target": self.balance_target >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise OlvidoError(f"protocol option {name}: invalid value in {self}")

    def to_dict(self) -> dict:
        return asdict(self)


def reduce_stratified(table: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Keep ``floor(fraction * n + 0.5)`` random images of each age, so every age keeps its share."""
    rng = _rng(seed, _STEP_REDUCE)
    keep = []
    for _, ids in table.groupby("age", sort=True)["id"]:
        count = int(np.floor(fraction * len(ids) + 0.5))
        keep.append(rng.choice(np.sort(ids.to_numpy()), size=count, replace=False))
    kept = np.concatenate(keep) if keep else np.array([], dtype=np.int64)
    return table[table["id"].isin(kept)].reset_index(drop=True)


def filter_ages(table: pd.DataFrame, age_min: int, age_max: int) -> pd.DataFrame:
    """Keep ages in ``[age_min, age_max]``, both ends included."""
    return table[table["age"].between(age_min, age_max)].reset_index(drop=True)


def image_quality(images: np.ndarray) -> pd.DataFrame:
    """Per image: ``sharpness`` (variance of the 4-neighbour Laplacian) and ``contrast`` (grey std)."""
    grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] - 4 * grey[:, 1:-1, 1:-1]
    return pd.DataFrame({"sharpness": lap.var(axis=(1, 2)), "contrast": grey.std(axis=(1, 2))})


def quality_filter(
    table: pd.DataFrame, images: np.ndarray, min_sharpness: float, min_contrast: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop blurred or flat images (a stand-in for the thesis's manual review).

    ``images`` is indexed by ``table['id']``. Returns the kept table and the removed rows with their
    ``sharpness``, ``contrast`` and ``reason``.
    """
    quality = image_quality(images[table["id"].to_numpy()])
    blurred = quality["sharpness"].to_numpy() < min_sharpness
    flat = quality["contrast"].to_numpy() < min_contrast
    removed = table[blurred | flat].copy()
    removed["sharpness"] = quality["sharpness"].to_numpy()[blurred | flat]
    removed["contrast"] = quality["contrast"].to_numpy()[blurred | flat]
    removed["reason"] = np.where(blurred[blurred | flat], "blur", "low_contrast")
    return table[~(blurred | flat)].reset_index(drop=True), removed.reset_index(drop=True)


def split_random(table: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Random split: ``round(val_fraction n)`` val, ``round(test_fraction n)`` test, the rest train."""
    n = len(table)
    n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    order = _rng(seed, _STEP_SPLIT).permutation(n)
    split = np.empty(n, dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val : n_val + n_test]] = "test"
    split[order[n_val + n_test :]] = "train"
    return table.assign(split=split)


def augment_balance(
    table: pd.DataFrame, target: int, limits: AugmentLimits, seed: int, first_id: int | None = None
) -> pd.DataFrame:
    """Fill every age with fewer than ``target`` train images up to ``target`` with augmented copies.

    Copies cycle through a random order of the age's train images, so sources are used evenly. Each copy
    gets a fresh id from ``first_id`` on (pass the source's size, so no copy shares an id with any source
    image; default: after the table's largest id), ``split='train'``, ``source_id`` = its original and
    its affine parameters. Ages at or above ``target`` and the val/test splits are untouched.
    """
    rng = _rng(seed, _STEP_AUGMENT)
    out = table.assign(source_id=NOT_AUGMENTED, **{c: np.nan for c in PARAM_COLUMNS})
    out["flip"] = 0
    train = table[table["split"] == "train"]
    copies = []
    for _, group in train.groupby("age", sort=True):
        missing = target - len(group)
        if missing <= 0:
            continue
        shuffled = group.iloc[rng.permutation(len(group))]
        sources = shuffled.iloc[np.arange(missing) % len(group)].copy()
        sources["source_id"] = sources["id"]
        for column, values in sample_params(rng, missing, limits).items():
            sources[column] = values
        copies.append(sources)
    if not copies:
        return out
    copies = pd.concat(copies, ignore_index=True)
    next_id = int(table["id"].max()) + 1 if first_id is None else first_id
    copies["id"] = np.arange(next_id, next_id + len(copies))
    rank = copies.groupby("source_id").cumcount()
    copies["file"] = copies["file"] + "#aug" + rank.astype(str)
    return pd.concat([out, copies], ignore_index=True)


def forget_group_of(ages: np.ndarray | pd.Series) -> np.ndarray:
    """The forget age group (0-4) of each age, ``NO_GROUP`` outside 20-60."""
    ages = np.asarray(ages)
    group = np.full(ages.shape, NO_GROUP, dtype=np.int64)
    for index, (low, high) in enumerate(FORGET_GROUPS):
        group[(ages >= low) & (ages <= high)] = index
    return group


@dataclass
class ProtocolResult:
    table: pd.DataFrame  # the manifest table
    removed_by_quality: pd.DataFrame
    counts: dict[str, int]


def run_protocol(faces_table: pd.DataFrame, images: np.ndarray, config: ProtocolConfig) -> ProtocolResult:
    """All protocol steps in the thesis's order, returning the manifest table and what each step kept."""
    reduced = reduce_stratified(faces_table, config.reduce_fraction, config.seed)
    filtered = filter_ages(reduced, config.age_min, config.age_max)
    removed = filtered.iloc[0:0].assign(sharpness=[], contrast=[], reason=[])
    if config.quality_filter:
        filtered, removed = quality_filter(filtered, images, config.min_sharpness, config.min_contrast)
    if len(filtered) == 0:
        raise OlvidoError(
            f"the protocol kept no images: {len(faces_table)} read, {len(reduced)} after the "
            f"{config.reduce_fraction:.0%} reduction, none left in ages {config.age_min}-{config.age_max}"
        )
    split = split_random(filtered, config.val_fraction, config.test_fraction, config.seed)
    table = augment_balance(split, config.balance_target, config.augment, config.seed, first_id=len(faces_table))
    table["forget_group"] = forget_group_of(table["age"])
    table = table.sort_values("id", kind="stable").reset_index(drop=True)
    originals = table["source_id"] == NOT_AUGMENTED
    counts = {
        "source": len(faces_table),
        "reduced": len(reduced),
        "age_filtered": len(filter_ages(reduced, config.age_min, config.age_max)),
        "quality_removed": len(removed),
        "kept": int(originals.sum()),
        "train_original": int(((table["split"] == "train") & originals).sum()),
        "train_augmented": int((~originals).sum()),
        "train": int((table["split"] == "train").sum()),
        "val": int((table["split"] == "val").sum()),
        "test": int((table["split"] == "test").sum()),
    }
    return ProtocolResult(table=table, removed_by_quality=removed, counts=counts)
