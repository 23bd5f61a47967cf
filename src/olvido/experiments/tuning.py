"""Tuning a method's hyperparameters against retraining with Optuna, without touching what the report measures.

One Optuna study per (dataset manifest, model, recipe, scope, method, tuning setup), stored in SQLite: a killed
run resumes where it stopped (``load_if_exists``). Each trial samples the method's search space (its spec's
``space``), unlearns the original of every tuning seed and scores the result against the model retrained
with that seed (``retraining_gaps``: MAE gaps on retain, forget and validation data and the Wasserstein
distance of forget predictions, METHODS.md section 5); the trial's value is the mean over the seeds, so no
trial wins on one seed's noise. A TPE sampler (seeded) minimises it; a median pruner drops a trial whose
first seed already scores worse than the median of earlier trials. Under a time budget (``max_time_ratio``), a
trial slower than that share of retraining is infeasible (an Optuna constraint, which TPE and ``best_trial``
honour) and is pruned as soon as its first run shows it.

No leak, enforced here: the tuning seeds are >= ``FIRST_TUNING_SEED`` (every model the study, the verdicts
and SISA report on is trained with a lower seed), the tuning forget set is a seeded part of the age group's
*training* originals (``tuning_split``), the objective reads retain-train, that forget set and retain-val,
and the test split is never read.

Trials go through the executor's ``pool``, as many runs at once as it has workers: each trial's first seed
runs first, then its remaining seeds if it is not pruned; a worker that frees up takes a waiting seed or a
new trial, so no worker waits for the slowest run of a batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from olvido.data.forget import ForgetSplit, split_forget
from olvido.data.protocol import NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor
from olvido.experiments.workspace import Workspace
from olvido.methods import config_for, get_method, make_config
from olvido.metrics.distances import TUNING_SETS, retraining_gaps
from olvido.storage import atomic_write_text, stable_hash

FIRST_TUNING_SEED = 10_000
TUNING_SEEDS = (10_000, 10_001, 10_002)
TUNED_FILE = "tuned.yaml"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# What the objective gives with no unlearning at all and for retraining itself (Tuner.baselines).
BASELINES = {"original": "O (untouched)", "retrained": "R (another tuning seed)"}
INTERRUPTED = "interrupted"  # user attribute of a trial a killed call left running


@dataclass(frozen=True)
class TuningConfig:
    trials: int = 50
    seeds: tuple[int, ...] = TUNING_SEEDS
    group: int = 0  # the age group whose training part supplies the tuning forget set
    # Of that group's training originals. All of them by default: the report deletes whole groups, and in the
    # `last` scope a half-group tuning set is an easier problem whose settings do not transfer (docs/tuning.md).
    forget_fraction: float = 1.0
    retain_samples: int = 2000  # retain-train images the objective scores (a seeded sample; all if fewer)
    sampler_seed: int = 0
    prune: bool = True
    # A time budget: a trial whose unlearning takes more than this share of retraining time is infeasible (an
    # Optuna constraint; pruned at its first seed), so the best configuration is the best one within budget.
    max_time_ratio: float | None = None

    def __post_init__(self) -> None:
        if int(self.trials) != self.trials or self.trials < 1:
            raise OlvidoError(f"trials {self.trials!r}: expected a whole number >= 1")
        seeds = tuple(int(s) for s in self.seeds)
        if len(set(seeds)) < 3 or min(seeds) < FIRST_TUNING_SEED:
            raise OlvidoError(
                f"tuning seeds {list(seeds)}: expected at least three distinct seeds >= {FIRST_TUNING_SEED} "
                "(lower seeds train the models the study and the verdicts report on)"
            )
        if not 0 < self.forget_fraction <= 1:
            raise OlvidoError(f"forget_fraction {self.forget_fraction!r}: expected a fraction in (0, 1]")
        if self.max_time_ratio is not None and not self.max_time_ratio > 0:
            raise OlvidoError(f"max_time_ratio {self.max_time_ratio!r}: expected a share of retraining time > 0")
        if int(self.retain_samples) != self.retain_samples or self.retain_samples < 1:
            raise OlvidoError(f"retain_samples {self.retain_samples!r}: expected a whole number >= 1")
        object.__setattr__(self, "seeds", seeds)

    def to_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds)}

    def identity(self) -> dict:
        """What names the study: everything but the trial budget (a bigger budget continues the same study); an
        unset time budget is left out so that studies named before it existed keep their names."""
        return {k: v for k, v in self.to_dict().items() if k != "trials" and not (k == "max_time_ratio" and v is None)}


def tuning_split(workspace: Workspace, group: int, fraction: float) -> ForgetSplit:
    """The tuning forget set: a seeded ``fraction`` of age group ``group``'s training originals (never its
    validation part, never a test image), with its retain sets."""
    from olvido.data import parse_forget

    table = workspace.prepared.manifest.table
    group_ids = set(parse_forget(workspace.prepared.manifest, f"group:{group}").forget.tolist())
    training = table[(table["split"] == "train") & (table["source_id"] == NOT_AUGMENTED) & table["id"].isin(group_ids)]
    ids = np.sort(training["id"].to_numpy())
    if len(ids) == 0:
        raise OlvidoError(
            f"tuning: forget group {group} has no training images in manifest {workspace.prepared.manifest.hash}"
        )
    size = max(1, round(fraction * len(ids)))
    chosen = np.random.default_rng([FIRST_TUNING_SEED, group]).choice(ids, size=size, replace=False)
    return split_forget(workspace.prepared.manifest, chosen, f"tune:group:{group}:{fraction}")


@dataclass
class TuningResult:
    method: str
    scope: str
    study_name: str
    storage: str
    best_params: dict
    best_value: float
    best_terms: dict  # the best trial's mean objective terms, seconds and time / retraining
    trials: dict  # counts by state: complete, pruned, fail
    minutes: float  # this call's wall time (a resumed study counts only what this call ran)
    config: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)  # BASELINES name -> its mean objective terms (Tuner.baselines)

    def summary(self) -> dict:
        return asdict(self)


class Tuner:
    """``Tuner(workspace, method, config).run()``: the Optuna study of one method in the workspace's scope."""

    def __init__(
        self,
        workspace: Workspace,
        method: str,
        config: TuningConfig = TuningConfig(),
        storage: str | None = None,
        executor=None,
        progress: bool = True,
    ):
        spec = get_method(method)
        scope = workspace.model_config.scope
        if not spec.space:
            raise OlvidoError(f"method {method!r} has nothing to tune: its spec declares no hyperparameter ranges")
        if scope not in spec.scopes:
            raise OlvidoError(
                f"method {method!r} does not support the {scope} scope (it supports {', '.join(spec.scopes)})"
            )
        self.ws, self.method, self.spec, self.config = workspace, method, spec, config
        self.executor, self.progress = executor or LocalExecutor(progress=False), progress
        if storage is None:
            folder = Path(workspace.cache) / "tuning"
            folder.mkdir(parents=True, exist_ok=True)
            storage = f"sqlite:///{folder / 'optuna.sqlite3'}"
        self.storage = storage
        self.split = tuning_split(workspace, config.group, config.forget_fraction)
        rng = np.random.default_rng([FIRST_TUNING_SEED, 1])
        retain = self.split.retain_train
        self.retain_ids = np.sort(rng.choice(retain, min(len(retain), config.retain_samples), replace=False))

    @property
    def study_name(self) -> str:
        identity = {
            "manifest": self.ws.prepared.manifest.hash,
            "architecture": self.ws.architecture,
            "fit": self.ws.fit_config.to_dict(),
            "method": self.method,
            "space": {name: asdict(param) for name, param in self.spec.space},
            "config": self.config.identity(),
            "forget": self.split.key,
        }
        return f"{self.method}-{self.ws.model_config.scope}-{stable_hash(identity)}"

    def _sets(self) -> dict[str, np.ndarray]:
        return {"retain": self.retain_ids, "forget": self.split.forget, "val": self.split.retain_val}

    @cached_property
    def references(self) -> tuple[dict, dict, dict]:
        """Trains (through the executor) or loads every tuning seed's original and retrained model: the
        originals' weights, the retrained models' predictions on the scored sets and their training seconds."""
        ws, seeds = self.ws, self.config.seeds
        jobs = [ws.original_job(s) for s in seeds] + [ws.retrained_job(self.split, s) for s in seeds]
        ws.ensure_trained(jobs, self.executor)
        states, references, seconds = {}, {}, {}
        for seed in seeds:
            states[seed] = ws.original(seed).model.state_dict()
            retrained = ws.retrained(self.split, seed)
            references[seed] = {name: ws.predict(retrained.model, ids) for name, ids in self._sets().items()}
            seconds[seed] = retrained.meta["seconds"]
        return states, references, seconds

    def baselines(self) -> dict[str, dict[str, float]]:
        """The objective's terms, mean over the tuning seeds, of the untouched original of each seed (a tuned
        method that does not beat it is better left unused) and of the model retrained with the next tuning
        seed (the floor that the seeds' own noise sets), both against the seed's retrained model."""
        _, references, retrain_seconds = self.references
        sets = self._sets()
        truth = {name: self.ws.ages(ids) for name, ids in sets.items()}
        seeds = self.config.seeds
        terms: dict[str, list[dict]] = {"original": [], "retrained": []}
        for i, seed in enumerate(seeds):
            model = self.ws.original(seed).model
            original = {name: self.ws.predict(model, ids) for name, ids in sets.items()}
            other = seeds[(i + 1) % len(seeds)]
            terms["original"].append({**retraining_gaps(truth, original, references[seed]), "time_ratio": 0.0})
            retrained = retraining_gaps(truth, references[other], references[seed])
            terms["retrained"].append({**retrained, "time_ratio": retrain_seconds[other] / retrain_seconds[seed]})
        return {name: {key: float(np.mean([t[key] for t in rows])) for key in rows[0]} for name, rows in terms.items()}

    def run(self) -> TuningResult:
        started = time.perf_counter()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if self.config.prune else optuna.pruners.NopPruner()
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            load_if_exists=True,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=self.config.sampler_seed),
            pruner=pruner,
        )
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # a trial left running by a killed call never finished: closed as failed, it does not count
            # against the budget, and the rerun asks a new one in its place
            study._storage.set_trial_user_attr(stale._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(stale._trial_id, TrialState.FAIL)

        def finished() -> int:
            return sum(not t.user_attrs.get(INTERRUPTED) for t in study.get_trials(deepcopy=False, states=FINISHED))

        if finished() < self.config.trials:
            states, references, retrain_seconds = self.references
            truth = {name: self.ws.ages(ids) for name, ids in self._sets().items()}
            shared = (self.ws.for_workers(), self.split, self._sets(), states)
            with tqdm(
                total=self.config.trials, initial=finished(), desc=f"tuning {self.method}", unit="trial",
                disable=not self.progress,
            ) as bar:  # fmt: skip
                self._run_trials(study, finished, truth, references, retrain_seconds, shared, bar)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        budget = self.config.max_time_ratio
        if budget is not None and not any(t.constraints.get("time_ratio", 1) <= 0 for t in complete):
            timed = [
                t.user_attrs["time_ratio"] for t in study.get_trials(deepcopy=False) if "time_ratio" in t.user_attrs
            ]
            fastest = f" (the fastest took {min(timed):.3f})" if timed else ""
            raise OlvidoError(
                f"tuning {self.method}: no completed trial ran within max_time_ratio {budget} of retraining "
                f"time{fastest}; expected a larger budget or more trials"
            )
        if not complete:
            raise OlvidoError(f"tuning {self.method}: no trial completed (see the failed trials' user attributes)")
        best = study.best_trial  # under a time budget, the best of the trials within it
        counts = {
            state.name.lower(): sum(not t.user_attrs.get(INTERRUPTED) for t in study.get_trials(states=(state,)))
            for state in FINISHED
        }
        return TuningResult(
            method=self.method,
            scope=self.ws.model_config.scope,
            study_name=self.study_name,
            storage=self.storage,
            best_params=dict(best.params),
            best_value=float(best.value),
            best_terms=dict(best.user_attrs),
            trials=counts,
            minutes=round((time.perf_counter() - started) / 60, 2),
            config=self.config.to_dict(),
            baselines=self.baselines(),
        )

    def _run_trials(self, study, finished, truth, references, retrain_seconds, shared, bar) -> None:
        """Runs trials until the budget is met, keeping every executor slot busy: a trial's first tuning seed
        runs first (a hopeless trial is pruned there), then its other seeds; a free slot takes a waiting
        seed of a live trial before it asks Optuna for a new trial. With one slot (the local executor) the
        order, and so every number, depends only on the seeds; with several (Ray) the trials asked depend
        on which finished first, as in any asynchronous Optuna study."""
        first, *rest = self.config.seeds
        budget = self.config.max_time_ratio
        # A run's time over every seed's retraining, averaged: early stopping makes the retrainings differ
        # (39-96 s for the tuning seeds in the `last` scope), the unlearning run hardly does
        per_retraining_second = float(np.mean([1 / retrain_seconds[s] for s in self.config.seeds]))
        slots = max(1, getattr(self.executor, "slots", 1))
        pool = self.executor.pool(_trial_job, shared)
        running: dict[int, tuple] = {}  # job handle -> (trial, seed)
        waiting: list[tuple] = []  # (trial, seed) of live trials past their first seed
        params: dict[int, dict] = {}
        scores: dict[int, list[dict]] = {}
        live: set[int] = set()  # trials asked and not yet told

        def close(trial, state=TrialState.COMPLETE, value=None) -> None:
            study.tell(trial, value, state=state)
            live.discard(trial.number)
            bar.update()

        def ask():
            trial = study.ask()
            values = {name: param.suggest(trial, name) for name, param in self.spec.space}
            try:  # a sampled combination the method's config refuses is a failed trial, not a crash
                config_for(self.method, self.ws.fit_config, None, 0, self.ws.device, **values)
            except OlvidoError as error:
                trial.set_user_attr("error", str(error))
                study.tell(trial, state=TrialState.FAIL)
                bar.update()
                return None
            params[trial.number], scores[trial.number] = values, []
            live.add(trial.number)
            return trial

        def fill() -> None:
            while len(running) < slots:
                if waiting:
                    trial, seed = waiting.pop(0)
                elif finished() + len(live) < self.config.trials:
                    trial, seed = ask(), first
                    if trial is None:
                        continue
                else:
                    return
                running[pool.submit((self.method, params[trial.number], seed))] = (trial, seed)

        fill()
        while running:
            handle, (seconds, predictions) = pool.next()
            trial, seed = running.pop(handle)
            if trial.number not in live:  # its trial already failed on another seed
                fill()
                continue
            try:
                terms = retraining_gaps(truth, predictions, references[seed])
            except ValueError as error:  # a run that diverged (NaN predictions) fails its trial
                trial.set_user_attr("error", f"seed {seed}: {error}")
                waiting[:] = [(t, s) for t, s in waiting if t.number != trial.number]
                close(trial, TrialState.FAIL)
                fill()
                continue
            time_ratio = seconds / retrain_seconds[seed]
            scores[trial.number].append({**terms, "seconds": seconds, "time_ratio": time_ratio})
            if seed == first:
                trial.report(terms["objective"], step=0)
                expected = seconds * per_retraining_second
                if budget is not None and expected > budget:  # over budget already: not worth its other seeds
                    trial.set_user_attr("over_time_budget", True)
                    trial.set_user_attr("time_ratio", expected)
                    trial.set_constraint("time_ratio", expected - budget)
                    close(trial, TrialState.PRUNED)
                elif trial.should_prune():
                    close(trial, TrialState.PRUNED)
                else:
                    waiting.extend((trial, s) for s in rest)
            if trial.number in live and len(scores[trial.number]) == len(self.config.seeds):
                done = scores[trial.number]
                means = {key: float(np.mean([s[key] for s in done])) for key in done[0]}
                for key, value in means.items():
                    trial.set_user_attr(key, value)
                if budget is not None:  # feasible when <= 0: the mean over the seeds within budget
                    trial.set_constraint("time_ratio", means["time_ratio"] - budget)
                close(trial, value=means["objective"])
            fill()


def _trial_job(shared, item) -> tuple[float, dict[str, np.ndarray]]:
    """An executor job: one trial's unlearning run on one tuning seed, as wall seconds and predictions on the
    scored sets (the original's weights come with the job)."""
    workspace, split, sets, originals = shared
    method, values, seed = item
    original = workspace.new_model(seed=0)
    original.load_state_dict(originals[seed])
    result = workspace.unlearn(method, original.eval(), split, None, seed, **values)
    return result.seconds, {name: workspace.predict(result.model, sets[name]) for name in TUNING_SETS}


def save_tuned(folder: str | Path, result: TuningResult) -> Path:
    """Adds (or replaces) ``result``'s best configuration in ``folder/tuned.yaml``: scope -> method -> the
    params, the objective, the trial counts, the Optuna study they come from and the tuning setup (seeds,
    forget group and fraction): a folder tuned on half of a group and one tuned on all of it must not be
    mistaken for each other."""
    import yaml

    path = Path(folder) / TUNED_FILE
    tuned = yaml.safe_load(path.read_text()) if path.exists() else {}
    tuned.setdefault(result.scope, {})[result.method] = {
        "params": {name: _plain(value) for name, value in result.best_params.items()},
        "objective": round(result.best_value, 5),
        "trials": result.trials,
        "study": result.study_name,
    }
    if result.config:
        setup = {key: result.config[key] for key in ("seeds", "group", "forget_fraction")}
        if result.config.get("max_time_ratio") is not None:
            setup["max_time_ratio"] = result.config["max_time_ratio"]
        tuned[result.scope][result.method]["setup"] = setup
    atomic_write_text(path, yaml.safe_dump(tuned, sort_keys=True))
    return path


def _tuned_entries(folders) -> dict[str, dict[str, dict]]:
    """scope -> method -> whole ``tuned.yaml`` entry, read from each folder in turn: where several folders hold
    the same scope and method, the last one's entry wins. Every folder, method and field is checked (a
    one-line error names the folder)."""
    import yaml

    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if not folders:
        raise OlvidoError("--tuned: no folder given; expected one or more folders `olvido tune --out` wrote")
    merged: dict[str, dict[str, dict]] = {}
    for folder in folders:
        path = Path(folder) / TUNED_FILE
        if not path.exists():
            raise OlvidoError(f"--tuned {folder}: no {TUNED_FILE} there; expected the folder `olvido tune --out` wrote")
        try:
            tuned = yaml.safe_load(path.read_text()) or {}
            entries = {scope: {m: dict(entry) for m, entry in methods.items()} for scope, methods in tuned.items()}
            for methods in entries.values():
                for method, entry in methods.items():
                    make_config(method, **dict(entry["params"]))
        except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as error:
            raise OlvidoError(
                f"{path}: not a tuned-configurations file ({error}); expected scope -> method -> params"
            ) from None
        for scope, methods in entries.items():
            merged.setdefault(scope, {}).update(methods)
    return merged


def load_tuned(folders) -> dict[str, dict[str, dict]]:
    """scope -> method -> tuned config values, read from ``folder/tuned.yaml`` (``olvido run --tuned``). Given
    several folders, a scope and method tuned in more than one take the last folder's configuration, so
    folders tuned under different setups combine in the order given (e.g. budgeted configurations over
    unbudgeted ones). An unknown method or config field is a one-line error."""
    return {
        scope: {method: dict(entry["params"]) for method, entry in methods.items()}
        for scope, methods in _tuned_entries(folders).items()
    }


def load_tuned_setups(folders, scope: str) -> dict[str, dict | None]:
    """method -> the tuning setup recorded by the ``tuned.yaml`` entry that ``load_tuned(folders)`` takes for
    ``scope`` (None for entries written before setups were recorded)."""
    return {method: entry.get("setup") for method, entry in _tuned_entries(folders).get(scope, {}).items()}


def _plain(value):
    """A YAML-friendly Python number (Optuna may hand back numpy scalars)."""
    return value.item() if isinstance(value, np.generic) else value
