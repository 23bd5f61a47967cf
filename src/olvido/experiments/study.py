"""The thesis's study (Experiments 1-3) as resumable cells.

A *cell* is one model evaluated against its retrained reference: ``(method, forget group, epochs, seed)``,
where method is ``original`` (M_O), ``retrained`` (M_R^j), or a registered unlearning method applied to
M_O. A cell's record (MAE on test/retain/forget, Utility, Forgetting at the study's alpha, F, wall time and
its ratio to retraining) and its per-sample predictions are stored in the cache under a hash of
everything they depend on, so a killed run resumes at the first unfinished cell and no cell is computed
twice, across runs and report folders.

- ``epochs`` (Tables 4-7): each method at every epoch count, on the sweep group (0);
- ``groups`` (Table 8): every forget group, O and each method at its best epochs;
- ``alpha`` (Table 3): Forgetting of O and each method (best epochs) for every alpha, from stored
  predictions (no training).

"Best epochs" are the epochs with the highest mean F in the epochs experiment, unless given.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from olvido.data.forget import ForgetSplit, forget_age_group
from olvido.experiments.workspace import Workspace
from olvido.methods import config_for, get_method, unlearn
from olvido.metrics import absolute_errors, f_score, forgetting, mean_absolute_error, utility
from olvido.storage import atomic_save_npz, atomic_write_json, stable_hash

ORIGINAL, RETRAINED = "original", "retrained"
PREDICTION_SETS = ("test", "forget", "retain")


@dataclass(frozen=True)
class StudyConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    sweep_group: int = 0
    epochs: tuple[int, ...] = (2, 4, 8, 16)
    groups: tuple[int, ...] = (0, 1, 2, 3, 4)
    alphas: tuple[float, ...] = (2, 5, 10, 15, 20, 25, 30, 35)
    alpha: float = 15.0
    methods: tuple[str, ...] = ("finetune", "random_labels")
    best_epochs: dict[str, int] | None = None  # None: highest mean F in the epochs experiment

    def __post_init__(self) -> None:
        for method in self.methods:
            get_method(method)


@dataclass
class CellResult:
    record: dict
    predictions: dict[str, np.ndarray] = field(repr=False)  # "<set>_ids" and "<set>_pred" for each set


class Study:
    """Runs cells for one workspace (one dataset, one model recipe and scope)."""

    def __init__(self, workspace: Workspace, config: StudyConfig = StudyConfig(), progress: bool = True):
        self.ws = workspace
        self.config = config
        self.progress = progress
        self.folder = Path(workspace.cache) / "cells"
        self._cells: dict[str, CellResult] = {}

    @cached_property
    def _splits(self) -> dict[int, ForgetSplit]:
        return {group: forget_age_group(self.ws.prepared.manifest, group) for group in range(5)}

    def split(self, group: int) -> ForgetSplit:
        return self._splits[group]

    def _unlearn_config(self, method: str, epochs: int, seed: int):
        return config_for(method, self.ws.fit_config, epochs, seed, self.ws.device)

    def _key(self, method: str, group: int, epochs: int | None, seed: int) -> str:
        unlearn_config = None if method in (ORIGINAL, RETRAINED) else self._unlearn_config(method, epochs, seed).to_dict()
        return stable_hash(
            {
                "manifest": self.ws.prepared.manifest.hash,
                "architecture": self.ws.architecture,
                "fit": self.ws.fit_config.to_dict(),
                "cell": [method, group, epochs, seed],
                "unlearn": unlearn_config,
                "alpha": self.config.alpha,
                "version": 1,
            }
        )

    def cell(self, method: str, group: int, epochs: int | None, seed: int) -> CellResult:
        """The cell's result, from memory, the cache, or computed now (and stored)."""
        key = self._key(method, group, epochs, seed)
        if key in self._cells:
            return self._cells[key]
        record_path, predictions_path = self.folder / f"{key}.json", self.folder / f"{key}.npz"
        if record_path.exists() and predictions_path.exists():
            with np.load(predictions_path) as stored:
                result = CellResult(json.loads(record_path.read_text()), dict(stored))
        else:
            result = self._compute(method, group, epochs, seed)
            atomic_save_npz(predictions_path, **result.predictions)
            atomic_write_json(record_path, result.record)  # written last: its presence marks the cell done
        self._cells[key] = result
        return result

    def _compute(self, method: str, group: int, epochs: int | None, seed: int) -> CellResult:
        ws, split = self.ws, self.split(group)
        original = ws.original(seed)
        retrained = ws.retrained(split, seed)
        if method == ORIGINAL:
            model, seconds = original.model, original.meta["seconds"]
        elif method == RETRAINED:
            model, seconds = retrained.model, retrained.meta["seconds"]
        else:
            result = unlearn(
                method, original.model, ws.dataset(split.retain_train), ws.dataset(split.forget),
                ws.dataset(split.retain_val), self._unlearn_config(method, epochs, seed),
            )
            model, seconds = result.model, result.seconds
        sets = {"test": split.test, "forget": split.forget, "retain": np.concatenate([split.retain_train, split.retain_val])}
        predictions = {}
        for name, ids in sets.items():
            predictions[f"{name}_ids"] = ids
            predictions[f"{name}_pred"] = ws.predict(model, ids)
        if method == RETRAINED:
            reference = predictions
        else:
            reference = self.cell(RETRAINED, group, None, seed).predictions
        record = self._metrics(predictions, reference)
        record.update(
            method=method, group=group, epochs=epochs, seed=seed, scope=ws.model_config.scope,
            seconds=round(seconds, 3), retrain_seconds=retrained.meta["seconds"],
            time_ratio=round(seconds / retrained.meta["seconds"], 4),
        )
        return CellResult(record, predictions)

    def _metrics(self, predictions: dict, reference: dict) -> dict:
        ages = {name: self.ws.ages(predictions[f"{name}_ids"]) for name in PREDICTION_SETS}
        mae = {name: mean_absolute_error(ages[name], predictions[f"{name}_pred"]) for name in PREDICTION_SETS}
        reference_test_mae = mean_absolute_error(ages["test"], reference["test_pred"])
        utility_value = utility(reference_test_mae, mae["test"])
        forgetting_value = forgetting(ages["forget"], predictions["forget_pred"], reference["forget_pred"], self.config.alpha)
        return {
            "test_mae": mae["test"], "retain_mae": mae["retain"], "forget_mae": mae["forget"],
            "retrained_test_mae": reference_test_mae, "utility": utility_value, "forgetting": forgetting_value,
            "F": f_score(utility_value, forgetting_value), "alpha": self.config.alpha,
            "n_test": len(ages["test"]), "n_forget": len(ages["forget"]), "n_retain": len(ages["retain"]),
        }

    # -- experiments ---------------------------------------------------------------------------------
    def _run(self, cells: list[tuple[str, int, int | None, int]], description: str) -> pd.DataFrame:
        records = []
        for method, group, epochs, seed in tqdm(cells, desc=description, unit="cell", disable=not self.progress):
            records.append(self.cell(method, group, epochs, seed).record)
        return pd.DataFrame(records)

    def run_epochs(self) -> pd.DataFrame:
        """Tables 4-7: every method at every epoch count on the sweep group, plus O and R."""
        config, group = self.config, self.config.sweep_group
        cells = [(m, group, None, s) for s in config.seeds for m in (RETRAINED, ORIGINAL)]
        cells += [(m, group, e, s) for s in config.seeds for m in config.methods for e in config.epochs]
        return self._run(cells, "epochs experiment").assign(experiment="epochs")

    def best_epochs(self) -> dict[str, int]:
        if self.config.best_epochs is not None:
            return dict(self.config.best_epochs)
        table = self.run_epochs()
        table = table[table["method"].isin(self.config.methods)]
        means = table.groupby(["method", "epochs"])["F"].mean()
        return {method: int(means[method].idxmax()) for method in self.config.methods}

    def run_groups(self) -> pd.DataFrame:
        """Table 8: every forget group; O, R and each method at its best epochs."""
        best = self.best_epochs()
        cells = []
        for group in self.config.groups:
            for seed in self.config.seeds:
                cells += [(RETRAINED, group, None, seed), (ORIGINAL, group, None, seed)]
                cells += [(m, group, best[m], seed) for m in self.config.methods]
        return self._run(cells, "groups experiment").assign(experiment="groups")

    def run_alpha(self) -> pd.DataFrame:
        """Table 3: Forgetting of O and each method (best epochs) on the sweep group, for every alpha."""
        best, group = self.best_epochs(), self.config.sweep_group
        rows = []
        for seed in self.config.seeds:
            reference = self.cell(RETRAINED, group, None, seed).predictions
            ages = self.ws.ages(reference["forget_ids"])
            for method, epochs in [(ORIGINAL, None)] + [(m, best[m]) for m in self.config.methods]:
                predictions = self.cell(method, group, epochs, seed).predictions
                for alpha in self.config.alphas:
                    rows.append({
                        "method": method, "epochs": epochs, "seed": seed, "alpha": alpha,
                        "forgetting": forgetting(ages, predictions["forget_pred"], reference["forget_pred"], alpha),
                    })
        return pd.DataFrame(rows).assign(scope=self.ws.model_config.scope)

    def per_sample_errors(self, seed: int | None = None, count: int = 100) -> pd.DataFrame:
        """Absolute errors of O, R and each method (best epochs) on ``count`` fixed random test images."""
        seed = self.config.seeds[0] if seed is None else seed
        best, group = self.best_epochs(), self.config.sweep_group
        test = self.split(group).test
        chosen = np.sort(np.random.default_rng(2024).choice(test, size=min(count, len(test)), replace=False))
        ages = self.ws.ages(chosen)
        columns = {"id": chosen, "age": ages}
        for method, epochs in [(ORIGINAL, None), (RETRAINED, None)] + [(m, best[m]) for m in self.config.methods]:
            predictions = self.cell(method, group, epochs, seed).predictions
            lookup = dict(zip(predictions["test_ids"].tolist(), predictions["test_pred"].tolist()))
            columns[method] = absolute_errors(ages, [lookup[i] for i in chosen.tolist()])
        return pd.DataFrame(columns)

    def predictions_table(self, records: pd.DataFrame, sets: tuple[str, ...] = ("test", "forget")) -> pd.DataFrame:
        """Per-sample predictions (years, 2 decimals) of the given cells on ``sets``, long format. The retain
        set's are left out by default (they dominate the size; its MAE is in every record and all
        predictions stay in the cache)."""
        frames = []
        for record in records.drop_duplicates(["method", "group", "epochs", "seed"]).to_dict("records"):
            epochs = None if pd.isna(record["epochs"]) else int(record["epochs"])
            predictions = self.cell(record["method"], int(record["group"]), epochs, int(record["seed"])).predictions
            for name in sets:
                ids = predictions[f"{name}_ids"]
                frames.append(pd.DataFrame({
                    "scope": record["scope"], "method": record["method"], "group": record["group"],
                    "epochs": epochs, "seed": record["seed"], "set": name, "id": ids,
                    "age": self.ws.ages(ids), "prediction": np.round(predictions[f"{name}_pred"], 2),
                }))
        return pd.concat(frames, ignore_index=True)


@dataclass
class StudyResult:
    scope: str
    runs: pd.DataFrame
    alpha: pd.DataFrame
    per_sample: pd.DataFrame
    best_epochs: dict[str, int]
    seconds: float
    model_summary: dict
    config: dict
    predictions: pd.DataFrame
    verdicts: list[dict] = field(default_factory=list)  # Verdicts.evaluate rows on the sweep group
    interclass_confusion: list[dict] = field(default_factory=list)
    feature_injection: list[dict] = field(default_factory=list)


def run_study(workspace: Workspace, config: StudyConfig = StudyConfig(), progress: bool = True, verdicts=None) -> StudyResult:
    """Experiments 2, 3 and 1 (in that order: 3 and 1 use 2's best epochs) for one workspace, then, with a
    ``VerdictConfig``, the verdicts of O and each method (best epochs) on the sweep group."""
    import time

    from olvido.experiments.verdicts import Verdicts, feature_injection, interclass_confusion

    started = time.perf_counter()
    study = Study(workspace, config, progress)
    epochs = study.run_epochs()
    groups = study.run_groups()
    alpha = study.run_alpha()
    runs = pd.concat([epochs, groups], ignore_index=True)
    originals = [workspace.original(seed) for seed in config.seeds]
    summary = {
        "scope": workspace.model_config.scope,
        "architecture": workspace.architecture,
        "fit": workspace.fit_config.to_dict(),
        "pretrain": None if workspace.pretrain_report is None else {k: v for k, v in workspace.pretrain_report.items() if k != "history"},
        "original_test_mae": [workspace.evaluate(o.model) for o in originals],
        "manifest": workspace.prepared.manifest.hash,
    }
    result = StudyResult(
        scope=workspace.model_config.scope, runs=runs, alpha=alpha, per_sample=study.per_sample_errors(),
        best_epochs=study.best_epochs(), seconds=time.perf_counter() - started, model_summary=summary,
        config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        predictions=study.predictions_table(runs),
    )
    if verdicts is not None:
        best = study.best_epochs()
        split = study.split(config.sweep_group)
        result.verdicts = Verdicts(workspace, split, verdicts, progress).evaluate(best)
        result.interclass_confusion = interclass_confusion(workspace, methods=best)
        if workspace.model_config.scope == "head":
            result.feature_injection = feature_injection(workspace, split, methods=best)
        result.seconds = time.perf_counter() - started
    return result
