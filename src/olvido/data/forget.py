"""Forget sets: which train+val originals must be forgotten, and the retain/test sets that follow.

``forget`` = the selected train+val ORIGINAL images. ``retain_train``/``retain_val`` = the rest of train
and val MINUS every augmented copy of a forgotten image (data derived from it must go too). ``test`` is
always the whole test split, whatever is forgotten.

Specs (CLI and configs): ``group:J`` (J in 0-4, see protocol.FORGET_GROUPS), ``random:FRACTION[:SEED]`` or
``random:COUNT[:SEED]`` (a fraction below 1, or a whole number of images),
``gender:G``, ``race:R``, ``ids:1,2,3`` or ``ids:@file`` (one id per line), ``files:@file`` (one file
name per line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olvido.data.manifest import Manifest
from olvido.data.protocol import FORGET_GROUPS, NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.storage import stable_hash


@dataclass(frozen=True)
class ForgetSplit:
    spec: str
    forget: np.ndarray  # ids of forgotten train+val originals
    retain_train: np.ndarray  # ids, augmented copies of retained images included
    retain_val: np.ndarray
    test: np.ndarray
    removed_copies: np.ndarray  # augmented copies dropped because their source is forgotten

    @property
    def key(self) -> str:
        """Identity of the forget set for cache keys: the spec and the exact ids."""
        return stable_hash({"spec": self.spec, "forget": self.forget.tolist()})

    def summary(self) -> dict:
        return {
            "spec": self.spec,
            "forget": len(self.forget),
            "retain_train": len(self.retain_train),
            "retain_val": len(self.retain_val),
            "test": len(self.test),
            "removed_augmented_copies": len(self.removed_copies),
        }


def _candidates(manifest: Manifest):
    table = manifest.table
    return table[(table["split"] != "test") & (table["source_id"] == NOT_AUGMENTED)]


def split_forget(manifest: Manifest, forget_ids: np.ndarray, spec: str) -> ForgetSplit:
    """Build forget/retain/test id sets from forgotten original ids (which must be train+val originals)."""
    table = manifest.table
    forget_ids = np.unique(np.asarray(forget_ids, dtype=np.int64))
    if len(forget_ids) == 0:
        raise OlvidoError(f"forget set {spec!r} selects no train/val images of manifest {manifest.hash}")
    allowed = set(_candidates(manifest)["id"].tolist())
    bad = [int(i) for i in forget_ids if int(i) not in allowed]
    if bad:
        known = set(table["id"].tolist())
        unknown = [i for i in bad if i not in known]
        what = f"unknown ids {unknown[:10]}" if unknown else f"ids {bad[:10]} are test samples or augmented copies"
        raise OlvidoError(
            f"forget set {spec!r}: {what}; expected ids of train/val original images in manifest {manifest.hash}"
        )
    gone = table["id"].isin(forget_ids) | table["source_id"].isin(forget_ids)
    copies = table["source_id"].isin(forget_ids)
    return ForgetSplit(
        spec=spec,
        forget=forget_ids,
        retain_train=table.loc[~gone & (table["split"] == "train"), "id"].to_numpy(),
        retain_val=table.loc[~gone & (table["split"] == "val"), "id"].to_numpy(),
        test=table.loc[table["split"] == "test", "id"].to_numpy(),
        removed_copies=table.loc[copies, "id"].to_numpy(),
    )


def forget_age_group(manifest: Manifest, group: int) -> ForgetSplit:
    if not 0 <= group < len(FORGET_GROUPS):
        raise OlvidoError(f"forget group {group}: expected 0..{len(FORGET_GROUPS) - 1} ({_groups_text()})")
    low, high = FORGET_GROUPS[group]
    protocol = manifest.meta.get("protocol", {})
    age_min, age_max = protocol.get("age_min", 20), protocol.get("age_max", 60)
    if low < age_min or high > age_max:
        raise OlvidoError(f"forget group {group} ({low}-{high}) lies outside the manifest's ages {age_min}-{age_max}")
    candidates = _candidates(manifest)
    ids = candidates.loc[candidates["forget_group"] == group, "id"].to_numpy()
    return split_forget(manifest, ids, f"group:{group}")


def forget_random(manifest: Manifest, amount: float, seed: int = 0) -> ForgetSplit:
    """Random train/val originals: a fraction of them (``0 < amount < 1``) or a number of images (a whole
    ``amount >= 1``: single deletion requests, as SISA is measured on)."""
    ids = _candidates(manifest)["id"].to_numpy()
    if 0 < amount < 1:
        size, name = max(1, round(amount * len(ids))), f"random:{amount}:{seed}"
    elif amount >= 1 and float(amount).is_integer() and amount <= len(ids):
        size, name = int(amount), f"random:{int(amount)}:{seed}"
    else:
        raise OlvidoError(
            f"forget amount {amount}: expected a fraction strictly between 0 and 1 or a whole number of images "
            f"from 1 to {len(ids)}"
        )
    chosen = np.random.default_rng([seed, 7]).choice(ids, size=size, replace=False)
    return split_forget(manifest, chosen, name)


def forget_attribute(manifest: Manifest, column: str, value: int) -> ForgetSplit:
    valid = {"gender": (0, 1), "race": (0, 1, 2, 3, 4)}
    if column not in valid or value not in valid[column]:
        raise OlvidoError(f"forget set {column}:{value}: expected gender:0|1 or race:0..4")
    candidates = _candidates(manifest)
    return split_forget(manifest, candidates.loc[candidates[column] == value, "id"].to_numpy(), f"{column}:{value}")


def forget_files(manifest: Manifest, names: list[str]) -> ForgetSplit:
    by_name = dict(zip(manifest.table["file"], manifest.table["id"]))
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise OlvidoError(f"forget set: unknown file names {unknown[:5]}; expected names from manifest {manifest.hash}")
    return split_forget(manifest, np.array([by_name[n] for n in names]), "files:" + stable_hash(sorted(names)))


def read_list(reference: str) -> list[str]:
    if reference.startswith("@"):
        path = Path(reference[1:])
        if not path.exists():
            raise OlvidoError(f"{path}: no such file; expected one id or file name per line")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [part.strip() for part in reference.split(",") if part.strip()]


def parse_forget(manifest: Manifest, spec: str) -> ForgetSplit:
    """Build a forget split from a spec string such as ``group:0`` or ``random:0.1:3`` (module docstring)."""
    kind, _, argument = spec.partition(":")
    try:
        if kind == "group":
            return forget_age_group(manifest, int(argument))
        if kind == "random":
            fraction, _, seed = argument.partition(":")
            return forget_random(manifest, float(fraction), int(seed or 0))
        if kind in ("gender", "race"):
            return forget_attribute(manifest, kind, int(argument))
        if kind == "ids":
            ids = [int(x) for x in read_list(argument)]
            return split_forget(manifest, np.array(ids, dtype=np.int64), "ids:" + stable_hash(sorted(ids)))
        if kind == "files":
            return forget_files(manifest, read_list(argument))
    except ValueError:
        pass
    raise OlvidoError(
        f"forget set {spec!r}: expected group:0..4, random:FRACTION|COUNT[:SEED], gender:0|1, race:0..4, "
        "ids:1,2,3, ids:@FILE or files:@FILE"
    )


def _groups_text() -> str:
    return ", ".join(f"{j}={lo}-{hi}" for j, (lo, hi) in enumerate(FORGET_GROUPS))
