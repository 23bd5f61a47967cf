"""The study: the thesis's Experiments 1-3 and the methods comparison, as resumable cells.

A *cell* is one model evaluated against its retrained reference: ``(method, forget group, knob value,
seed)``, where method is ``original`` (M_O), ``retrained`` (M_R^j, the reference), ``retrained_other`` (a
second retrained model with another seed, scored against M_R^j: what a perfect method can reach), or a
registered unlearning method applied to M_O with its knob (``MethodSpec.knob``: epochs for most) at that
value. A cell's record (MAE on test/retain/forget, Utility, Forgetting at the study's alpha, F, the
Wasserstein distance and mean |prediction - R| on the forget set, wall time and its ratio to retraining)
and its per-sample predictions are stored in the cache under a hash of everything they depend on, so a
killed run resumes at the first unfinished cell and no cell is computed twice.

- ``sweep`` (Tables 4-7): each method at every value of its knob, on the sweep group (0);
- ``methods`` (Table 8 and the leaderboard): every forget group; O, the second retrained model and each
  method at its best knob value;
- ``alpha`` (Table 3): Forgetting of O and each method (best values) for every alpha, from stored
  predictions (no training).

"Best" is the knob value with the highest mean F in the sweep, unless given (``best``). Nothing here
names a method: labels, knobs and sweep values come from the registry.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from olvido.data.forget import ForgetSplit, forget_age_group
from olvido.data.protocol import FORGET_GROUPS
from olvido.errors import OlvidoError
from olvido.experiments.workspace import MEMORISING_FIT, Workspace
from olvido.methods import THESIS_METHODS, config_for, get_method, list_methods, make_config
from olvido.metrics import (
    absolute_errors,
    f_score,
    forgetting,
    mean_absolute_error,
    mean_prediction_difference,
    prediction_wasserstein,
    utility,
)
from olvido.storage import atomic_save_npz, atomic_write_json, stable_hash
from olvido.training import FitConfig

ORIGINAL, RETRAINED, RETRAINED_OTHER = "original", "retrained", "retrained_other"
REFERENCES = (ORIGINAL, RETRAINED, RETRAINED_OTHER)
REFERENCE_LABELS = {ORIGINAL: "O", RETRAINED: "R", RETRAINED_OTHER: "R (another seed)"}
OTHER_SEED_OFFSET = 100  # the second retrained model of seed s is trained with seed s + 100
PREDICTION_SETS = ("test", "forget", "retain")


def method_label(method: str) -> str:
    return REFERENCE_LABELS.get(method) or get_method(method).label


def canonical_value(value):
    """A knob value as cache keys and records hold it: None, an int when whole (2.0 -> 2), else a float.
    Tables round-trip values through float columns; without this, 2 and 2.0 would be two cells."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    value = float(value)
    return int(value) if value.is_integer() else value


def comparable_methods(scope: str) -> tuple[str, ...]:
    """Every registered unlearning method that supports ``scope`` (retraining is the reference, not a method)."""
    return tuple(name for name in list_methods(scope) if name != "retrain")


@dataclass(frozen=True)
class StudyConfig:
    """``methods``: None = every registered method supporting the scope. ``sweeps``: knob values per
    method (default: each spec's). ``best``: knob value per method (default: highest mean F in the sweep)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    sweep_group: int = 0
    groups: tuple[int, ...] = (0, 1, 2, 3, 4)
    alphas: tuple[float, ...] = (2, 5, 10, 15, 20, 25, 30, 35)
    alpha: float = 15.0
    methods: tuple[str, ...] | None = None
    sweeps: tuple[tuple[str, tuple], ...] = ()
    best: tuple[tuple[str, float], ...] = ()
    # Config values per method applied to every one of its cells (a tuned configuration, ``tuned_study``):
    # the values are part of each cell's key, so these cells never mix with the defaults' cells.
    configs: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()

    def __post_init__(self) -> None:
        for method in list(self.methods or ()) + [m for m, _ in self.sweeps] + [m for m, _ in self.best]:
            get_method(method)
        for method, values in self.configs:
            make_config(method, **dict(values))
        for group in (self.sweep_group, *self.groups):
            if not 0 <= group < len(FORGET_GROUPS):
                raise OlvidoError(f"group {group}: expected one of 0..{len(FORGET_GROUPS) - 1}")
        if self.methods is not None:
            outside = sorted({m for m, _ in self.sweeps + self.best} - set(self.methods))
            if outside:
                raise OlvidoError(
                    f"best/sweep values given for {', '.join(outside)}, which are not among the study's methods "
                    f"({', '.join(self.methods)})"
                )

    def methods_for(self, scope: str) -> tuple[str, ...]:
        if self.methods is None:
            return comparable_methods(scope)
        unsupported = [m for m in self.methods if scope not in get_method(m).scopes]
        if unsupported:
            raise OlvidoError(
                f"methods {', '.join(unsupported)} do not support the {scope} scope "
                f"(supported there: {', '.join(comparable_methods(scope))})"
            )
        return self.methods

    def sweep_values(self, method: str) -> tuple:
        return dict(self.sweeps).get(method, get_method(method).knob.values)

    def config_values(self, method: str) -> dict:
        """The config values this study sets for ``method`` besides its knob (``configs``)."""
        return dict(dict(self.configs).get(method, ()))

    def tuned(self, tuned: dict[str, dict], scope: str) -> "StudyConfig":
        """The methods experiment of every method of this study that has a tuned configuration (``olvido tune``'s
        params: the knob's value and other config values), at that configuration."""
        methods = [m for m in self.methods_for(scope) if m in tuned]
        best, configs = [], []
        for method in methods:
            values = dict(tuned[method])
            knob = get_method(method).knob.name
            best.append((method, canonical_value(values.pop(knob, get_method(method).defaults()[knob]))))
            configs.append((method, tuple(sorted(values.items()))))
        return replace(self, methods=tuple(methods), sweeps=(), best=tuple(best), configs=tuple(configs))


@dataclass
class CellResult:
    record: dict
    predictions: dict[str, np.ndarray] = field(repr=False)  # "<set>_ids" and "<set>_pred" for each set


class Study:
    """Runs cells for one workspace (one dataset, one model recipe and scope)."""

    def __init__(self, workspace: Workspace, config: StudyConfig = StudyConfig(), progress: bool = True, executor=None):
        """``executor`` (``olvido.executor``): where missing cells' models are trained and unlearned (None:
        here, one after another); the cells are scored and stored here either way."""
        self.ws = workspace
        self.config = config
        self.progress = progress
        self.executor = executor
        self.folder = Path(workspace.cache) / "cells"
        self.methods = config.methods_for(workspace.model_config.scope)
        self._cells: dict[str, CellResult] = {}

    @cached_property
    def _splits(self) -> dict[int, ForgetSplit]:
        return {group: forget_age_group(self.ws.prepared.manifest, group) for group in range(len(FORGET_GROUPS))}

    def split(self, group: int) -> ForgetSplit:
        return self._splits[group]

    def unlearn_config(self, method: str, value, seed: int) -> dict | None:
        """The whole configuration a method's cell runs with (None for O and the retrained models)."""
        if method in REFERENCES:
            return None
        extra = self.config.config_values(method)
        return config_for(method, self.ws.fit_config, value, seed, self.ws.device, **extra).to_dict()

    def _key(self, method: str, group: int, value, seed: int) -> str:
        unlearn_config = self.unlearn_config(method, value, seed)
        return stable_hash(
            {
                "manifest": self.ws.prepared.manifest.hash,
                "architecture": self.ws.architecture,
                "fit": self.ws.fit_config.to_dict(),
                "cell": [method, group, value, seed],
                "unlearn": unlearn_config,
                "alpha": self.config.alpha,
                "version": 2,
            }
        )

    def _paths(self, method: str, group: int, value, seed: int) -> tuple[str, Path, Path]:
        key = self._key(method, group, value, seed)
        return key, self.folder / f"{key}.json", self.folder / f"{key}.npz"

    def cell(self, method: str, group: int, value, seed: int, computed: tuple | None = None) -> CellResult:
        """The cell's result, from memory, the cache, or computed now (and stored). ``computed``: the
        cell's ``(seconds, predictions)`` from an executor job (``compute_cells``)."""
        value = None if method in REFERENCES else canonical_value(value)
        key, record_path, predictions_path = self._paths(method, group, value, seed)
        if key in self._cells:
            return self._cells[key]
        if record_path.exists() and predictions_path.exists():
            with np.load(predictions_path) as stored:
                result = CellResult(json.loads(record_path.read_text()), dict(stored))
        else:
            result = self._compute(method, group, value, seed, computed)
            atomic_save_npz(predictions_path, **result.predictions)
            atomic_write_json(record_path, result.record)  # written last: its presence marks the cell done
        # the whole configuration, lossless (JSON), beside the knob: tuned cells differ from the defaults' here
        result.record["config"] = config_json(self.unlearn_config(method, value, seed))
        self._cells[key] = result
        return result

    def compute_cells(self, cells: list[tuple[str, int, object, int]]) -> None:
        """Compute the missing cells among ``cells`` through the executor: first every model they need
        (trained once, stored here), then the unlearning runs as jobs; each comes back as predictions and
        seconds, and is scored and stored here. Without an executor, cells are computed as they are asked."""
        missing = []
        for method, group, value, seed in cells:
            value = None if method in REFERENCES else canonical_value(value)
            _, record_path, predictions_path = self._paths(method, group, value, seed)
            if not (record_path.exists() and predictions_path.exists()) and (method, group, value, seed) not in missing:
                missing.append((method, group, value, seed))
        if self.executor is None or not missing:
            return
        ws = self.ws
        jobs = [ws.retrained_job(self.split(g), s) for _, g, _, s in missing]
        jobs += [
            ws.retrained_job(self.split(g), s + OTHER_SEED_OFFSET) for m, g, _, s in missing if m == RETRAINED_OTHER
        ]
        jobs += [ws.original_job(s) for m, _, _, s in missing if m != RETRAINED and m != RETRAINED_OTHER]
        unique = {}
        for job in jobs:  # one training per identity
            unique.setdefault((job["role"], job["seed"], id(job.get("forget")) if job.get("forget") else None), job)
        ws.ensure_trained(list(unique.values()), self.executor)
        unlearning = [cell for cell in missing if cell[0] not in REFERENCES]
        if unlearning:
            seeds = sorted({seed for *_, seed in unlearning})
            states = {seed: ws.original(seed).model.state_dict() for seed in seeds}
            extras = {method: self.config.config_values(method) for method, *_ in unlearning}
            shared = (ws.for_workers(), self._splits, states, extras)
            done = self.executor.imap(_cell_job, unlearning, shared=shared, description="cells")
            for index, computed in done:  # scored and stored as each comes back
                self.cell(*unlearning[index], computed=computed)

    def _compute(self, method: str, group: int, value, seed: int, computed: tuple | None = None) -> CellResult:
        ws, split = self.ws, self.split(group)
        retrained = ws.retrained(split, seed)
        if computed is not None:
            seconds, predictions = computed
        else:
            if method == RETRAINED:
                model, seconds = retrained.model, retrained.meta["seconds"]
            elif method == RETRAINED_OTHER:
                other = ws.retrained(split, seed + OTHER_SEED_OFFSET)
                model, seconds = other.model, other.meta["seconds"]
            elif method == ORIGINAL:
                original = ws.original(seed)
                model, seconds = original.model, original.meta["seconds"]
            else:
                extra = self.config.config_values(method)
                result = ws.unlearn(method, ws.original(seed).model, split, value, seed, **extra)
                model, seconds = result.model, result.seconds
            predictions = cell_predictions(ws, split, model)
        reference = predictions if method == RETRAINED else self.cell(RETRAINED, group, None, seed).predictions
        record = self._metrics(predictions, reference)
        spec_knob = None if method in REFERENCES else get_method(method).knob.name
        record.update(
            method=method,
            label=method_label(method),
            group=group,
            knob=spec_knob,
            value=value,
            seed=seed,
            scope=ws.model_config.scope,
            # unrounded: the ratio must equal seconds / retrain_seconds as stored (tables round for display)
            seconds=seconds,
            retrain_seconds=retrained.meta["seconds"],
            time_ratio=seconds / retrained.meta["seconds"],
        )
        return CellResult(record, predictions)

    def _metrics(self, predictions: dict, reference: dict) -> dict:
        ages = {name: self.ws.ages(predictions[f"{name}_ids"]) for name in PREDICTION_SETS}
        mae = {name: mean_absolute_error(ages[name], predictions[f"{name}_pred"]) for name in PREDICTION_SETS}
        reference_test_mae = mean_absolute_error(ages["test"], reference["test_pred"])
        utility_value = utility(reference_test_mae, mae["test"])
        forgetting_value = forgetting(
            ages["forget"], predictions["forget_pred"], reference["forget_pred"], self.config.alpha
        )
        return {
            "test_mae": mae["test"],
            "retain_mae": mae["retain"],
            "forget_mae": mae["forget"],
            "retrained_test_mae": reference_test_mae,
            "utility": utility_value,
            "forgetting": forgetting_value,
            "F": f_score(utility_value, forgetting_value),
            "alpha": self.config.alpha,
            "wasserstein": prediction_wasserstein(predictions["forget_pred"], reference["forget_pred"]),
            "prediction_gap": mean_prediction_difference(predictions["forget_pred"], reference["forget_pred"]),
            "n_test": len(ages["test"]),
            "n_forget": len(ages["forget"]),
            "n_retain": len(ages["retain"]),
        }

    # -- experiments ---------------------------------------------------------------------------------
    def _run(self, cells: list[tuple[str, int, object, int]], description: str) -> pd.DataFrame:
        self.compute_cells(cells)
        records = []
        for method, group, value, seed in tqdm(cells, desc=description, unit="cell", disable=not self.progress):
            records.append(self.cell(method, group, value, seed).record)
        return pd.DataFrame(records)

    def run_sweep(self) -> pd.DataFrame:
        """Tables 4-7: every method at every value of its knob on the sweep group, with O, R and R (another seed)."""
        config, group = self.config, self.config.sweep_group
        cells = [(m, group, None, s) for s in config.seeds for m in (RETRAINED, ORIGINAL, RETRAINED_OTHER)]
        cells += [
            (m, group, canonical_value(v), s)
            for s in config.seeds
            for m in self.methods
            for v in config.sweep_values(m)
        ]
        return self._run(cells, "sweep experiment").assign(experiment="sweep")

    @cached_property
    def best(self) -> dict[str, object]:
        """Each method's knob value with the highest mean F in the sweep (or the configured one)."""
        chosen = dict(self.config.best)
        missing = [m for m in self.methods if m not in chosen]
        if missing:
            table = self.run_sweep()
            means = table[table["method"].isin(missing)].groupby(["method", "value"])["F"].mean()
            for method in missing:
                chosen[method] = means[method].idxmax()
        return {m: canonical_value(chosen[m]) for m in self.methods}

    def run_methods(self) -> pd.DataFrame:
        """Table 8 and the leaderboard: every forget group; O, R, R (another seed) and each method at its best value."""
        cells = []
        for group in self.config.groups:
            for seed in self.config.seeds:
                cells += [
                    (RETRAINED, group, None, seed),
                    (ORIGINAL, group, None, seed),
                    (RETRAINED_OTHER, group, None, seed),
                ]
                cells += [(m, group, self.best[m], seed) for m in self.methods]
        return self._run(cells, "methods experiment").assign(experiment="methods")

    def run_alpha(self) -> pd.DataFrame:
        """Table 3: Forgetting of O, R (another seed) and each method (best values) on the sweep group, per alpha."""
        group = self.config.sweep_group
        rows = []
        for seed in self.config.seeds:
            reference = self.cell(RETRAINED, group, None, seed).predictions
            ages = self.ws.ages(reference["forget_ids"])
            for method, value in [(ORIGINAL, None), (RETRAINED_OTHER, None)] + list(self.best.items()):
                predictions = self.cell(method, group, value, seed).predictions
                for alpha in self.config.alphas:
                    rows.append(
                        {
                            "method": method,
                            "label": method_label(method),
                            "value": value,
                            "seed": seed,
                            "alpha": alpha,
                            "forgetting": forgetting(ages, predictions["forget_pred"], reference["forget_pred"], alpha),
                        }
                    )
        return pd.DataFrame(rows).assign(scope=self.ws.model_config.scope)

    def per_sample_errors(self, seed: int | None = None, count: int = 100) -> pd.DataFrame:
        """Absolute errors of O, R and each method (best values) on ``count`` fixed random test images."""
        seed = self.config.seeds[0] if seed is None else seed
        group = self.config.sweep_group
        test = self.split(group).test
        chosen = np.sort(np.random.default_rng(2024).choice(test, size=min(count, len(test)), replace=False))
        ages = self.ws.ages(chosen)
        columns = {"id": chosen, "age": ages}
        for method, value in [(ORIGINAL, None), (RETRAINED, None)] + list(self.best.items()):
            predictions = self.cell(method, group, value, seed).predictions
            lookup = dict(zip(predictions["test_ids"].tolist(), predictions["test_pred"].tolist()))
            columns[method] = absolute_errors(ages, [lookup[i] for i in chosen.tolist()])
        return pd.DataFrame(columns)

    def predictions_table(self, records: pd.DataFrame, sets: tuple[str, ...] = ("test", "forget")) -> pd.DataFrame:
        """Per-sample predictions (years, 3 decimals: enough to re-derive every metric of the cell within 0.001,
        Wasserstein included) of the given cells on ``sets``, long format, with each cell's configuration. The retain
        set's are left out by default (they dominate the size; its MAE is in every record and all
        predictions stay in the cache)."""
        frames = []
        for record in unique_cells(records).to_dict("records"):
            value = canonical_value(record["value"])
            cell = self.cell(record["method"], int(record["group"]), value, int(record["seed"]))
            predictions = cell.predictions
            for name in sets:
                ids = predictions[f"{name}_ids"]
                frames.append(
                    pd.DataFrame(
                        {
                            "scope": record["scope"],
                            "method": record["method"],
                            "group": record["group"],
                            "value": value,
                            "config": cell.record["config"],
                            "seed": record["seed"],
                            "set": name,
                            "id": ids,
                            "age": self.ws.ages(ids),
                            "prediction": np.round(predictions[f"{name}_pred"], 3),
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True)


def config_json(config: dict | None) -> str:
    """A cell's configuration as one lossless JSON string (sorted keys; "" for O and the retrained models)."""
    return "" if config is None else json.dumps(config, sort_keys=True)


def unique_cells(records: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the sweep and methods experiments share some (O, R, methods at their best values)."""
    return (
        records.assign(_value=records["value"].map(canonical_value))
        .drop_duplicates(["method", "group", "_value", "seed"])
        .drop(columns="_value")
    )


def cell_predictions(workspace: Workspace, split: ForgetSplit, model) -> dict[str, np.ndarray]:
    """A cell's stored predictions: ids and predictions on the test, forget and retain sets."""
    sets = {
        "test": split.test,
        "forget": split.forget,
        "retain": np.concatenate([split.retain_train, split.retain_val]),
    }
    predictions = {}
    for name, ids in sets.items():
        predictions[f"{name}_ids"] = ids
        predictions[f"{name}_pred"] = workspace.predict(model, ids)
    return predictions


def _cell_job(shared, cell) -> tuple[float, dict[str, np.ndarray]]:
    """An executor job: one unlearning cell's wall seconds and predictions (the original's weights come with
    the job)."""
    workspace, splits, originals, extras = shared
    method, group, value, seed = cell
    original = workspace.new_model(seed=0)
    original.load_state_dict(originals[seed])
    result = workspace.unlearn(method, original.eval(), splits[group], value, seed, **extras[method])
    return result.seconds, cell_predictions(workspace, splits[group], result.model)


@dataclass
class StudyResult:
    scope: str
    runs: pd.DataFrame
    alpha: pd.DataFrame
    per_sample: pd.DataFrame
    best: dict[str, object]
    seconds: float
    model_summary: dict
    config: dict
    predictions: pd.DataFrame
    verdicts: list[dict] = field(default_factory=list)  # Verdicts.evaluate rows on the sweep group
    neurips: list[dict] = field(default_factory=list)  # their NeurIPS-score rows (model, protocol, scalar)
    interclass_confusion: list[dict] = field(default_factory=list)
    feature_injection: list[dict] = field(default_factory=list)
    # The memorising regime (``MEMORISING_FIT``): its verdict rows (with U-LiRA) and what its models memorise
    memorising: list[dict] = field(default_factory=list)
    memorising_summary: dict = field(default_factory=dict)
    # The methods experiment again at each tuned configuration (``olvido tune``), and those configurations
    tuned_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    tuned: dict[str, dict] = field(default_factory=dict)
    tuned_setups: dict[str, dict | None] = field(default_factory=dict)  # method -> its tuning setup, if known


def run_study(
    workspace: Workspace,
    config: StudyConfig = StudyConfig(),
    progress: bool = True,
    verdicts=None,
    executor=None,
    memorising=None,
    memorising_fit: FitConfig | None = None,
    tuned: dict[str, dict] | None = None,
    tuned_setups: dict[str, dict | None] | None = None,
) -> StudyResult:
    """The sweep, the methods experiment and the alpha experiment (in that order: the later ones use the
    sweep's best values) for one workspace, then, with a ``VerdictConfig``, the verdicts of O and each
    method (best values) on the sweep group; ``executor`` runs the verdicts' many-model work (None: here).

    ``memorising`` (a ``VerdictConfig``): the same verdicts again in the memorising regime, where models are
    trained with ``memorising_fit`` (default: ``MEMORISING_FIT`` of the scope) and memorise their faces.

    ``tuned`` (method -> config values, ``load_tuned``): the methods experiment again for each of those methods
    at its tuned configuration (``StudyResult.tuned_runs``), beside the defaults' results; ``tuned_setups``
    (method -> the setup it was tuned under, ``load_tuned_setups``) is carried to the report."""
    from olvido.experiments.verdicts import Verdicts, feature_injection, interclass_confusion

    started = time.perf_counter()
    study = Study(workspace, config, progress, executor)
    sweep = study.run_sweep()
    methods = study.run_methods()
    alpha = study.run_alpha()
    runs = pd.concat([sweep, methods], ignore_index=True)
    originals = [workspace.original(seed) for seed in config.seeds]
    summary = {
        "scope": workspace.model_config.scope,
        "architecture": workspace.architecture,
        "fit": workspace.fit_config.to_dict(),
        "pretrain": None
        if workspace.pretrain_report is None
        else {k: v for k, v in workspace.pretrain_report.items() if k != "history"},
        "original_test_mae": [workspace.evaluate(o.model) for o in originals],
        "manifest": workspace.prepared.manifest.hash,
    }
    result = StudyResult(
        scope=workspace.model_config.scope,
        runs=runs,
        alpha=alpha,
        per_sample=study.per_sample_errors(),
        best=study.best,
        seconds=time.perf_counter() - started,
        model_summary=summary,
        config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
        | {"methods": list(study.methods)},
        predictions=study.predictions_table(runs),
    )
    if tuned:
        tuned_config = config.tuned(tuned, workspace.model_config.scope)
        tuned_study = Study(workspace, tuned_config, progress, executor)
        tuned_runs = tuned_study.run_methods()
        result.tuned_runs = tuned_runs[tuned_runs["method"].isin(tuned_config.methods)].reset_index(drop=True)
        # the tuned cells' predictions too: every reported number re-derives from predictions.csv.gz
        tuned_predictions = tuned_study.predictions_table(result.tuned_runs)
        # a tuned configuration equal to a default one is the same cell: its predictions are stored once
        result.predictions = pd.concat([result.predictions, tuned_predictions], ignore_index=True).drop_duplicates(
            ["scope", "method", "group", "config", "seed", "set", "id"], ignore_index=True
        )
        result.tuned = {method: dict(tuned[method]) for method in tuned_config.methods}
        result.tuned_setups = {method: (tuned_setups or {}).get(method) for method in tuned_config.methods}
    if verdicts is not None:
        split = study.split(config.sweep_group)
        thesis = {m: v for m, v in study.best.items() if m in THESIS_METHODS} or dict(list(study.best.items())[:2])
        judge = Verdicts(workspace, split, verdicts, progress, executor)
        result.verdicts = judge.evaluate(study.best)
        if result.tuned:  # each tuned method again at its tuned configuration, for the default-vs-tuned table
            result.verdicts += judge.evaluate(result.tuned, with_original=False, with_sanity=False)
        result.neurips = judge.neurips
        result.interclass_confusion = interclass_confusion(workspace, methods=thesis)
        if workspace.model_config.scope == "head":
            result.feature_injection = feature_injection(workspace, split, methods=study.best)
        result.seconds = time.perf_counter() - started
    if memorising is not None:
        split = study.split(config.sweep_group)
        result.memorising, result.memorising_summary = memorising_verdicts(
            workspace, split, study.best, memorising, memorising_fit, progress, executor
        )
        result.seconds = time.perf_counter() - started
    return result


def memorising_verdicts(
    workspace: Workspace,
    split: ForgetSplit,
    methods: dict[str, object],
    verdicts,
    fit_config: FitConfig | None = None,
    progress: bool = True,
    executor=None,
) -> tuple[list[dict], dict]:
    """The verdicts of O, each method and R (another seed) with models trained to memorise (``fit_config``,
    default ``MEMORISING_FIT`` of the scope), and a summary that shows whether they do: O's and R's train
    and test MAE and the recipe."""
    from olvido.experiments.verdicts import Verdicts

    scope = workspace.model_config.scope
    if fit_config is None:
        if scope not in MEMORISING_FIT:
            raise OlvidoError(
                f"memorising regime: no recipe for scope {scope!r} (expected one of {', '.join(MEMORISING_FIT)}, "
                "or a fit config)"
            )
        fit_config = MEMORISING_FIT[scope]
    started = time.perf_counter()
    judge = Verdicts(workspace.with_fit(fit_config), split, verdicts, progress, executor)
    rows = judge.evaluate(methods)
    ws = judge.ws
    original, retrained = judge.original(0), judge.retrained(0)
    train = ws.split_ids("train")
    summary = {
        "fit": fit_config.to_dict(),
        "original_train_mae": mean_absolute_error(ws.ages(train), ws.predict(original, train)),
        "original_test_mae": ws.evaluate(original)["test_mae"],
        "retrained_retain_train_mae": mean_absolute_error(
            ws.ages(split.retain_train), ws.predict(retrained, split.retain_train)
        ),
        "retrained_test_mae": ws.evaluate(retrained)["test_mae"],
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    return rows, summary
