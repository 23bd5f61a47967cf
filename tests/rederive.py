"""An implementation of the thesis metric written apart from ``olvido.metrics`` (only the standard library and
NumPy), to recompute every row of a report's ``runs.csv`` from its ``predictions.csv.gz``: the test of
``tests/test_study.py`` and ``bench/verify_report.py`` (the committed report) both call ``rederive``.

For each row: its cell's test and forget predictions are found by (scope, method, group, seed, config) -
the config column tells a tuned cell from the default one with the same knob value - and the retrained
model's by (scope, "retrained", group, seed). Then MAE = mean |y - p|; Utility = MAE_R(test) / MAE(test);
Forgetting = mean over the forget set of exp(-| |y - p_R| - |y - p| | / alpha); F = U x Forgetting;
Wasserstein-1 between the forget-set prediction distributions (equal sizes: mean |sorted p - sorted p_R|).
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

CHECKED = ("test_mae", "forget_mae", "utility", "forgetting", "F", "wasserstein")


def _read_predictions(path: Path) -> tuple[dict, bool]:
    cells: dict = defaultdict(lambda: {"test": ([], []), "forget": ([], [])})
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.DictReader(handle)
        has_config = "config" in (reader.fieldnames or [])
        for row in reader:
            if row["set"] not in ("test", "forget"):
                continue
            key = (row["scope"], row["method"], int(row["group"]), int(row["seed"]), _cell_tag(row, has_config))
            ages, predictions = cells[key][row["set"]]
            ages.append(float(row["age"]))
            predictions.append(float(row["prediction"]))
    return {k: {s: (np.array(a), np.array(p)) for s, (a, p) in v.items()} for k, v in cells.items()}, has_config


def _cell_tag(row: dict, has_config: bool) -> str:
    """What tells two cells of one method, group and seed apart: the config JSON (or, in reports written
    before it existed, the knob value, which cannot tell a tuned cell from a default one)."""
    if row["method"] in ("original", "retrained", "retrained_other"):
        return ""
    if has_config:
        return row["config"]
    return "" if row["value"] in ("", "nan") else repr(float(row["value"]))


def _metrics(cell: dict, reference: dict, alpha: float) -> dict:
    ages_t, pred_t = cell["test"]
    ref_ages_t, ref_t = reference["test"]
    ages_f, pred_f = cell["forget"]
    _, ref_f = reference["forget"]
    test_mae = float(np.mean(np.abs(ages_t - pred_t)))
    reference_mae = float(np.mean(np.abs(ref_ages_t - ref_t)))
    utility = reference_mae / test_mae
    gaps = np.abs(np.abs(ages_f - ref_f) - np.abs(ages_f - pred_f))
    forgetting = float(np.mean([math.exp(-gap / alpha) for gap in gaps]))
    return {
        "test_mae": test_mae,
        "forget_mae": float(np.mean(np.abs(ages_f - pred_f))),
        "utility": utility,
        "forgetting": forgetting,
        "F": utility * forgetting,
        "wasserstein": float(np.mean(np.abs(np.sort(pred_f) - np.sort(ref_f)))),
    }


def rederive(folder: str | Path) -> dict:
    """Recompute every row of ``folder/runs.csv``; returns ``{"rows", "checked", "missing", "max_difference",
    "worst"}`` (``missing``: rows whose cell has no predictions; ``worst``: the row and column of the largest
    difference)."""
    folder = Path(folder)
    cells, has_config = _read_predictions(folder / "predictions.csv.gz")
    rows = list(csv.DictReader(open(folder / "runs.csv", newline="")))
    checked, missing, largest, worst = 0, [], 0.0, None
    for index, row in enumerate(rows):
        scope, method, group, seed = row["scope"], row["method"], int(row["group"]), int(row["seed"])
        key = (scope, method, group, seed, _cell_tag(row, has_config and "config" in row))
        reference = cells.get((scope, "retrained", group, seed, ""))
        untold = not has_config and row.get("experiment") == "methods (tuned)"  # no config: indistinguishable
        if untold or key not in cells or reference is None or len(cells[key]["forget"][0]) == 0:
            missing.append(index)
            continue
        for column, value in _metrics(cells[key], reference, float(row["alpha"])).items():
            difference = abs(value - float(row[column]))
            if difference > largest:
                largest, worst = difference, (index, column)
        checked += 1
    return {"rows": len(rows), "checked": checked, "missing": missing, "max_difference": largest, "worst": worst}
