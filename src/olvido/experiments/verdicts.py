"""Trustworthy verdicts: does an unlearned model look like retraining to an attacker?

For one forget set and one recipe, ``Verdicts`` evaluates the original model (O), unlearning methods
applied to it, and a second retrained model (the "perfect forget" sanity row), each against the retrained
reference R:

- the thesis metric (utility, Forgetting at alpha 15, F);
- membership inference: logistic and SVC population attacks (forget vs non-member test samples of the
  same ages) for the model AND for R, with the gap; a LiRA-style likelihood-ratio attack with shadow
  models trained with and without each example;
- distances to R on the forget set: Wasserstein, mean |prediction difference|; relearn time (epochs of
  fine-tuning on the forget set until its MAE is within 5% of O's, as in AIN) and its ratio to R's;
- the NeurIPS 2023 forget score over K models per side against a reference set of K retrained models
  (seeds 0..K-1), under two protocols: K unlearning runs from ONE original with K seeds (as the challenge
  ran its unlearning 512 times from one trained model) and K runs from K originals trained with K seeds
  (U-LiRA's and DeepUnlearn's; deterministic methods are scored under it only). O's row uses K originals.
  Calibrated (METHODS.md section 4.2): divided by F_rr, the score of a second set of K retrained models
  (seeds K..2K-1), with paired bootstrap intervals over the forget examples; the sanity row scores a third
  set (seeds 2K..3K-1), which should calibrate to about 1. With each: the spread ratio (median over forget
  examples of the unlearned runs' sd over the retrained runs'). Scalars: the prediction (the regression
  analogue of the logit-scaled confidence) and -|error|; the final score multiplies the raw score by the
  MAE ratios. Every K model's predictions are cached, so a rerun resumes without unlearning again.

All models here are single networks (ensemble of 1): the K models, the shadows and the evaluated models
are then alike, so no attack is helped or hurt by comparing an average of three with one network.

``interclass_confusion`` and ``feature_injection`` are the thesis's remaining tests, adapted to regression.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from olvido.data.forget import ForgetSplit, split_forget
from olvido.data.protocol import FORGET_GROUPS
from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor
from olvido.experiments.workspace import Workspace
from olvido.methods import THESIS_METHODS, config_for, get_method, unlearn
from olvido.metrics import absolute_errors, f_score, forgetting, mean_absolute_error, utility
from olvido.metrics.distances import mean_prediction_difference, prediction_wasserstein
from olvido.metrics.epsilon import calibrated_forget_score, example_points, final_score, spread_ratio
from olvido.metrics.mia import (
    attack_features,
    leave_one_out_attack,
    likelihood_ratio_scores,
    population_attack,
    score_attack,
)
from olvido.storage import atomic_save_npz, atomic_write_json, stable_hash
from olvido.training import ArrayDataset, FitConfig, fit, one_batch_loader

ORIGINAL, RETRAINED_OTHER_SEED = "original", "retrained (another seed)"
# NeurIPS-score protocols: K unlearning runs from one original with K seeds (the challenge's), or from K
# originals trained with K seeds (U-LiRA's and DeepUnlearn's); the K retrained models of the sanity row.
ONE_ORIGINAL, K_ORIGINALS, RETRAINED_PROTOCOL = "one original", "K originals", "K retrained"
PROTOCOLS = (ONE_ORIGINAL, K_ORIGINALS)
SCALARS = ("prediction", "neg_abs_error")


@dataclass(frozen=True)
class VerdictConfig:
    k: int = 32  # models per side for the NeurIPS score; 0 skips it
    shadows: int = 16  # LiRA shadow models; 0 skips the attack
    folds: int = 5
    alpha: float = 15.0
    relearn_max_epochs: int = 50
    relearn_tolerance: float = 1.05
    seed: int = 0
    protocols: tuple[str, ...] = PROTOCOLS  # for the methods' NeurIPS scores
    ulira_shadows: int = 0  # U-LiRA: shadow originals, each unlearned by the method under test; 0 skips
    resamples: int = 2000  # bootstrap resamples of the forget examples for the score's intervals
    # The methods given a NeurIPS score (None: every one). O and the sanity row always get one when k > 0:
    # they are what the methods' scores are read against. Where K trainings are costly (the last scope)
    # this keeps the K sets to the methods that have no score in a cheaper scope.
    k_methods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.k_methods is not None and (isinstance(self.k_methods, str) or not self.k_methods):
            raise OlvidoError(f"k_methods {self.k_methods!r}: expected None (every method) or a tuple of method names")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            raise OlvidoError(f"protocols {list(self.protocols)}: expected one or both of {', '.join(PROTOCOLS)}")
        if self.k and self.k < 3:
            raise OlvidoError(f"k {self.k}: expected 0 (no NeurIPS score) or at least 3 models per side")
        if self.ulira_shadows and self.ulira_shadows < 6:
            # leave-one-out needs, among the other shadows, two that trained on an example and two that did not
            raise OlvidoError(f"ulira_shadows {self.ulira_shadows}: expected 0 (no U-LiRA) or at least 6")


class Verdicts:
    def __init__(
        self,
        workspace: Workspace,
        split: ForgetSplit,
        config: VerdictConfig = VerdictConfig(),
        progress: bool = True,
        executor=None,
    ):
        """``executor``: where the K-model sets and shadows are trained and unlearned (``olvido.executor``;
        default: here, one after another)."""
        self.ws = workspace.with_ensemble(1)
        self.executor = executor if executor is not None else LocalExecutor(progress)
        self.ws.progress = False  # one bar per verdict step below, not one per trained network
        self.split = split
        self.config = config
        self.progress = progress
        self._memo: dict[tuple, object] = {}
        self.neurips: list[dict] = []  # rows of ``neurips_score``, filled by ``evaluate``

    def _once(self, key: tuple, compute):
        """Compute a value that several rows share (the reference's attacks, relearn time) once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # -- data -----------------------------------------------------------------------------------------
    @cached_property
    def nonmembers(self) -> np.ndarray:
        """Test samples drawn like the forget set: the same age group for group forget sets."""
        test = self.split.test
        if self.split.spec.startswith("group:"):
            low, high = FORGET_GROUPS[int(self.split.spec.split(":")[1])]
            ages = self.ws.ages(test)
            return test[(ages >= low) & (ages <= high)]
        return test

    def _predict(self, model: nn.Module, ids: np.ndarray) -> np.ndarray:
        return self.ws.predict(model, ids)

    def _unlearned(self, original: nn.Module, method: str, value, seed: int) -> tuple[nn.Module, float]:
        result = self.ws.unlearn(method, original, self.split, value, seed)
        return result.model, result.seconds

    # -- reference models -----------------------------------------------------------------------------
    def original(self, seed: int = 0) -> nn.Module:
        return self.ws.original(seed).model

    def retrained(self, seed: int = 0) -> nn.Module:
        return self.ws.retrained(self.split, seed).model

    @cached_property
    def _shadow_plan(self) -> tuple[list[dict], np.ndarray, np.ndarray]:
        """LiRA's shadow trainings: each on retain-train + a random half of (forget + non-members); the
        jobs, the pool and the membership [S, pool]."""
        pool = np.concatenate([self.split.forget, self.nonmembers])
        rng = np.random.default_rng([self.config.seed, 31])
        jobs, membership = [], []
        for index in range(self.config.shadows):
            chosen = rng.random(len(pool)) < 0.5
            train_ids = np.concatenate([self.split.retain_train, pool[chosen]])
            jobs.append(dict(train_ids=train_ids, val_ids=self.split.retain_val, seed=500 + index, role="shadow"))
            membership.append(chosen)
        return jobs, pool, np.array(membership)

    @cached_property
    def _shadow_runs(self) -> tuple[list[nn.Module], np.ndarray, np.ndarray]:
        """The shadow models, the pool and the membership."""
        jobs, pool, membership = self._shadow_plan
        return [trained.model for trained in self.ws.train_many(jobs, self.executor)], pool, membership

    def _lira(self, model: nn.Module) -> dict:
        shadows, pool, membership = self._shadow_runs
        shadow_scores = np.stack([self._predict(s, pool) for s in shadows])
        scores = likelihood_ratio_scores(self._predict(model, pool), shadow_scores, membership)
        n_forget = len(self.split.forget)
        return score_attack(scores[:n_forget], scores[n_forget:])

    # -- U-LiRA ----------------------------------------------------------------------------------------
    @cached_property
    def _ulira_plan(self) -> tuple[list[dict], np.ndarray, list[ForgetSplit]]:
        """U-LiRA's shadow originals: shadow s trains on retain-train plus a random half H_s of the forget set
        (with their augmented copies); H_s is then what it forgets. Returns the trainings, the membership
        [S, n_forget] (True: in H_s) and each shadow's forget split (H_s against the same retain sets)."""
        split, table = self.split, self.ws.prepared.manifest.table
        rng = np.random.default_rng([self.config.seed, 47])
        jobs, membership, halves = [], [], []
        for shadow in range(self.config.ulira_shadows):
            chosen = rng.random(len(split.forget)) < 0.5
            half = split.forget[chosen]
            copies = np.intersect1d(table.loc[table["source_id"].isin(half), "id"].to_numpy(), split.removed_copies)
            train_ids = np.concatenate([split.retain_train, half, copies])
            jobs.append(dict(train_ids=train_ids, val_ids=split.retain_val, seed=700 + shadow, role="ulira-shadow"))
            membership.append(chosen)
            halves.append(
                ForgetSplit(
                    f"{split.spec}/ulira:{self.config.seed}:{shadow}",
                    half,
                    split.retain_train,
                    split.retain_val,
                    split.test,
                    copies,
                )
            )
        return jobs, np.array(membership), halves

    @cached_property
    def _ulira_shadows(self) -> tuple[list[nn.Module], np.ndarray, list[ForgetSplit]]:
        """The U-LiRA shadow originals, the membership and each shadow's forget split."""
        jobs, membership, halves = self._ulira_plan
        return [trained.model for trained in self.ws.train_many(jobs, self.executor)], membership, halves

    def _ulira_sanity_jobs(self) -> list[dict]:
        """The sanity row's U-LiRA models: one retrained without the forget set per shadow."""
        return [self.ws.retrained_job(self.split, 700 + shadow) for shadow in range(self.config.ulira_shadows)]

    def _ulira_predictions(self, name: str, value) -> np.ndarray:
        """[S, n_forget] forget-set predictions of the S shadows after unlearning their halves with ``name``
        (O: the shadow originals as they are; the sanity row: S models retrained without the forget set)."""
        models, _, halves = self._ulira_shadows
        ws, forget = self.ws, self.split.forget
        if name == ORIGINAL:
            return np.stack([ws.predict(model, forget) for model in models])
        if name == RETRAINED_OTHER_SEED:
            trained = ws.train_many(self._ulira_sanity_jobs(), self.executor)
            return np.stack([ws.predict(t.model, forget) for t in trained])
        paths = [self._k_path(name, value, f"U-LiRA {self.config.seed}", shadow) for shadow in range(len(models))]
        missing = [shadow for shadow, path in enumerate(paths) if not path.exists()]
        if missing:
            states = {shadow: models[shadow].state_dict() for shadow in missing}
            items = [(name, value, shadow, shadow) for shadow in missing]
            shared = (ws.for_workers(), forget, {shadow: halves[shadow] for shadow in missing}, states)
            done = self.executor.imap(_ulira_job, items, shared=shared, description=f"U-LiRA shadows: {name}")
            for index, predictions in done:
                atomic_save_npz(paths[missing[index]], forget_pred=predictions)
        runs = []
        for path in paths:
            with np.load(path) as stored:
                runs.append(stored["forget_pred"])
        return np.stack(runs)

    def ulira(self, name: str, value=None) -> dict:
        """U-LiRA (Hayes et al.) for ``name``: per forget example, Gaussians of its prediction under the
        shadows that trained on it and then forgot it, and under those that never trained on it; each shadow
        in turn is the target, scored by the likelihood ratio from the others (leave-one-out). AUC and TPR
        at 1% FPR over every (target, example) pair: 0.5 is a perfect forget."""
        _, membership, _ = self._ulira_shadows
        attack = leave_one_out_attack(self._ulira_predictions(name, value), membership)
        return {"ulira_auc": attack["auc"], "ulira_tpr_at_1pct_fpr": attack["tpr_at_0.01_fpr"]}

    # -- single-model measures ------------------------------------------------------------------------
    def _relearn_epochs(self, model: nn.Module, target_mae: float) -> float | None:
        """Epochs of fine-tuning on the forget set until its MAE <= ``target_mae`` (None: not within
        ``relearn_max_epochs``), measured to the optimiser step: each "epoch" of the loop is one batch."""
        ages = self.ws.ages(self.split.forget)
        if mean_absolute_error(ages, self._predict(model, self.split.forget)) <= target_mae:
            return 0.0
        recipe = self.ws.fit_config
        forget = self.ws.dataset(self.split.forget)
        batch = min(recipe.batch_size, len(forget))
        one_batch = one_batch_loader(forget, batch, self.config.seed)
        max_steps = int(np.ceil(self.config.relearn_max_epochs * len(forget) / batch))
        reached = {}

        def done(current: nn.Module, step: int) -> bool:
            if mean_absolute_error(ages, self._predict(current, self.split.forget)) <= target_mae:
                reached["step"] = step
                return True
            return False

        fit(
            copy.deepcopy(model),
            one_batch,
            None,
            FitConfig(epochs=max_steps, lr=recipe.lr, patience=None, seed=self.config.seed, device=self.ws.device),
            stop_when=done,
        )
        return round(reached["step"] * batch / len(forget), 3) if "step" in reached else None

    def measure(self, model: nn.Module, reference: nn.Module, original: nn.Module) -> dict:
        """Every single-model verdict of ``model`` against ``reference`` (R)."""
        split, ws, config = self.split, self.ws, self.config
        ages = {
            name: ws.ages(ids)
            for name, ids in (("test", split.test), ("forget", split.forget), ("non", self.nonmembers))
        }
        pred = {
            name: self._predict(model, ids)
            for name, ids in (("test", split.test), ("forget", split.forget), ("non", self.nonmembers))
        }
        ref = {
            name: self._predict(reference, ids)
            for name, ids in (("test", split.test), ("forget", split.forget), ("non", self.nonmembers))
        }
        test_mae, ref_test_mae = (
            mean_absolute_error(ages["test"], pred["test"]),
            mean_absolute_error(ages["test"], ref["test"]),
        )
        row = {
            "test_mae": test_mae,
            "forget_mae": mean_absolute_error(ages["forget"], pred["forget"]),
            "utility": utility(ref_test_mae, test_mae),
            "forgetting": forgetting(ages["forget"], pred["forget"], ref["forget"], config.alpha),
        }
        row["F"] = f_score(row["utility"], row["forgetting"])
        for attacker in ("logistic", "svc"):
            attack = population_attack(
                attack_features(ages["forget"], pred["forget"]),
                attack_features(ages["non"], pred["non"]),
                attacker,
                config.folds,
                config.seed,
            )
            baseline = self._once(
                ("mia", attacker, id(reference)),
                lambda attacker=attacker: population_attack(
                    attack_features(ages["forget"], ref["forget"]),
                    attack_features(ages["non"], ref["non"]),
                    attacker,
                    config.folds,
                    config.seed,
                ),
            )
            row[f"mia_{attacker}_acc"] = attack["accuracy"]
            row[f"mia_{attacker}_auc"] = attack["auc"]
            row[f"mia_{attacker}_acc_retrained"] = baseline["accuracy"]
            row[f"mia_{attacker}_gap"] = attack["accuracy"] - baseline["accuracy"]
        if config.shadows:
            lira, lira_reference = self._lira(model), self._once(("lira", id(reference)), lambda: self._lira(reference))
            row["lira_auc"], row["lira_auc_retrained"] = lira["auc"], lira_reference["auc"]
            row["lira_tpr_at_1pct_fpr"] = lira["tpr_at_0.01_fpr"]
        row["wasserstein"] = prediction_wasserstein(pred["forget"], ref["forget"])
        row["mean_prediction_difference"] = mean_prediction_difference(pred["forget"], ref["forget"])
        target = config.relearn_tolerance * mean_absolute_error(ages["forget"], self._predict(original, split.forget))
        relearn = self._relearn_epochs(model, target)
        relearn_reference = self._once(
            ("relearn", id(reference), target), lambda: self._relearn_epochs(reference, target)
        )
        row["relearn_epochs"], row["relearn_epochs_retrained"] = relearn, relearn_reference
        row["ain"] = (relearn / relearn_reference) if relearn is not None and relearn_reference else None
        return row

    # -- the NeurIPS score ----------------------------------------------------------------------------
    def _k_path(self, name: str, value, protocol: str, seed: int) -> Path:
        ws = self.ws
        unlearn_config = None
        if name not in (ORIGINAL, RETRAINED_OTHER_SEED):
            unlearn_config = config_for(name, ws.fit_config, value, seed, ws.device).to_dict()
        key = stable_hash(
            {
                "kind": "verdict-k-run",
                "manifest": ws.prepared.manifest.hash,
                "architecture": ws.architecture,
                "fit": ws.fit_config.to_dict(),
                "forget": self.split.key,
                "row": [name, value, protocol, seed],
                "unlearn": unlearn_config,
            }
        )
        return Path(ws.cache) / "verdicts" / f"{key}.npz"

    def k_for(self, name: str) -> int:
        """Models per side of ``name``'s NeurIPS score: the configuration's K, or 0 where ``k_methods`` leaves
        the method out."""
        chosen = self.config.k_methods
        if chosen is None or name in (ORIGINAL, RETRAINED_OTHER_SEED) or name in chosen:
            return self.config.k
        return 0

    def _row_path(self, name: str, value) -> Path:
        """Where one verdict row (and its NeurIPS rows) is stored: keyed by what the K runs are keyed by and
        the verdict configuration as this row sees it (its own K, ``k_for``), so a row left out of the
        NeurIPS score is the row a configuration with K = 0 made."""
        key = self._k_path(name, value, "row", 0).stem
        config = {k: v for k, v in asdict(self.config).items() if k != "k_methods"} | {"k": self.k_for(name)}
        return Path(self.ws.cache) / "verdicts" / "rows" / f"{stable_hash([key, config])}.json"

    def _k_runs(self, name: str, value, protocol: str, seeds: range) -> list[dict[str, np.ndarray]]:
        """The K models of a row, as predictions (``model_predictions``): from the cache, or computed now
        through the executor and stored here as they come back; their unlearning runs cost minutes, and a
        rerun must not repeat them."""
        paths = {seed: self._k_path(name, value, protocol, seed) for seed in seeds}
        missing = [seed for seed in seeds if not paths[seed].exists()]
        for seed, predictions in self._compute_k_runs(name, value, protocol, missing):
            atomic_save_npz(paths[seed], **predictions)
        runs = []
        for seed in seeds:
            with np.load(paths[seed]) as stored:
                runs.append(dict(stored))
        return runs

    def _compute_k_runs(self, name: str, value, protocol: str, seeds: list[int]) -> Iterator[tuple[int, dict]]:
        """``(seed, model_predictions)`` of the given K models, as each is done."""
        if not seeds:
            return
        ws, split = self.ws, self.split
        if name in (ORIGINAL, RETRAINED_OTHER_SEED):  # trained models: the training is the work
            jobs = [ws.original_job(s) if name == ORIGINAL else ws.retrained_job(split, s) for s in seeds]
            for seed, trained in zip(seeds, ws.train_many(jobs, self.executor)):
                yield seed, model_predictions(ws, split, trained.model)
            return
        sources = [0 if protocol == ONE_ORIGINAL else seed for seed in seeds]
        unique = sorted(set(sources))
        originals = ws.train_many([ws.original_job(s) for s in unique], self.executor)
        states = {s: trained.model.state_dict() for s, trained in zip(unique, originals)}
        items = [(name, value, seed, source) for seed, source in zip(seeds, sources)]
        shared = (ws.for_workers(), split, states)
        for index, predictions in self.executor.imap(
            _k_run_job, items, shared=shared, description=f"K models: {name} ({protocol})"
        ):
            yield seeds[index], predictions

    def _scores(self, runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Per scalar, the [K, n] scores of the forget examples: the prediction and -|error|."""
        ages = self.ws.ages(self.split.forget)
        predictions = np.stack([run["forget_pred"] for run in runs])
        return {"prediction": predictions, "neg_abs_error": -np.stack([absolute_errors(ages, p) for p in predictions])}

    @cached_property
    def _reference_k(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """The reference set: K retrained models, seeds 0..K-1."""
        runs = self._k_runs(RETRAINED_OTHER_SEED, None, RETRAINED_PROTOCOL, range(self.config.k))
        return runs, self._scores(runs)

    @cached_property
    def _calibration_points(self) -> dict[str, np.ndarray]:
        """Per scalar, each forget example's points for a second, independent set of K retrained models
        (seeds K..2K-1) against the reference set: F_rr, what a perfect method can reach."""
        k = self.config.k
        runs = self._k_runs(RETRAINED_OTHER_SEED, None, RETRAINED_PROTOCOL, range(k, 2 * k))
        _, reference = self._reference_k
        return {scalar: example_points(scores, reference[scalar]) for scalar, scores in self._scores(runs).items()}

    def neurips_score(self, runs: list[dict[str, np.ndarray]], name: str, value, protocol: str) -> list[dict]:
        """One row per scalar: the raw forget score against the reference set, F_rr and the calibrated
        score with bootstrap intervals, the spread ratio, and the final score (raw x MAE ratios)."""
        reference_runs, reference = self._reference_k
        scores = self._scores(runs)
        retain = ([r["retain_mae"] for r in runs], [r["retain_mae"] for r in reference_runs])
        test = ([r["test_mae"] for r in runs], [r["test_mae"] for r in reference_runs])
        rows = []
        for scalar in SCALARS:
            points = example_points(scores[scalar], reference[scalar])
            calibrated = calibrated_forget_score(
                points, self._calibration_points[scalar], resamples=self.config.resamples, seed=self.config.seed
            )
            rows.append(
                {
                    "model": name,
                    "value": value,
                    "protocol": protocol,
                    "scalar": scalar,
                    "k": len(runs),
                    **calibrated,
                    "spread_ratio": spread_ratio(scores[scalar], reference[scalar]),
                    "final_score": final_score(calibrated["raw"], retain[0], retain[1], test[0], test[1]),
                }
            )
        return rows

    def _neurips_rows(self, name: str, value) -> tuple[list[dict], str | None]:
        """The NeurIPS rows of one model under each protocol that applies, and a note for the verdict row."""
        k, protocols = self.config.k, self.config.protocols
        if name == ORIGINAL:  # O's K models are K originals whatever the protocol
            return self.neurips_score(self._k_runs(name, None, K_ORIGINALS, range(k)), name, value, K_ORIGINALS), None
        if name == RETRAINED_OTHER_SEED:  # the sanity row: a third set of K retrained models (seeds 2K..3K-1)
            runs = self._k_runs(name, None, RETRAINED_PROTOCOL, range(2 * k, 3 * k))
            return self.neurips_score(runs, name, value, RETRAINED_PROTOCOL), None
        rows, note = [], None
        for protocol in protocols:
            if protocol == ONE_ORIGINAL and not get_method(name).stochastic:
                # K runs of a deterministic method from one original are K copies of one model: the score
                # cannot rate that (a spread of 0 earns epsilon 50), so it is scored under K originals only
                note = "deterministic: not scored from one original"
                continue
            rows += self.neurips_score(self._k_runs(name, value, protocol, range(k)), name, value, protocol)
        return rows, note

    # -- the whole table ------------------------------------------------------------------------------
    def shared_trainings(self, with_original: bool = True, with_sanity: bool = True) -> list[dict]:
        """Every training the table's rows share (``Workspace.train`` jobs) and the cache does not already
        answer: R and O, the reference and calibration sets of K retrained models and the sanity row's
        third set (unless their predictions are stored), K originals (O's row, the K-originals protocol),
        the LiRA and U-LiRA shadows."""
        ws, split, k = self.ws, self.split, self.config.k
        jobs = [ws.retrained_job(split, 0), ws.original_job(0)] + [ws.retrained_job(split, 1)] * with_sanity
        if k:
            stored = self._k_path
            jobs += [
                ws.retrained_job(split, seed)
                for seed in range((3 if with_sanity else 2) * k)
                if not stored(RETRAINED_OTHER_SEED, None, RETRAINED_PROTOCOL, seed).exists()
            ]
            jobs += [
                ws.original_job(seed)
                for seed in range(k)
                if K_ORIGINALS in self.config.protocols
                or (with_original and not stored(ORIGINAL, None, K_ORIGINALS, seed).exists())
            ]
        if self.config.shadows:
            jobs += self._shadow_plan[0]
        if self.config.ulira_shadows:
            jobs += self._ulira_plan[0] + (self._ulira_sanity_jobs() if with_sanity else [])
        return jobs

    def prepare_references(self, with_original: bool = True, with_sanity: bool = True) -> float:
        """Train (or load) what every row shares (``shared_trainings``), all in one executor batch; seconds."""
        started = time.perf_counter()
        self.ws.ensure_trained(self.shared_trainings(with_original, with_sanity), self.executor)
        self.retrained(0), self.original(0)
        if self.config.k:
            _ = self._calibration_points
        if self.config.shadows:
            _ = self._shadow_runs
        if self.config.ulira_shadows:
            _ = self._ulira_shadows
        return time.perf_counter() - started

    def evaluate(self, methods: dict[str, object], with_original: bool = True, with_sanity: bool = True) -> list[dict]:
        """Rows for O, each ``method`` (name -> knob value, None for its default) and R of another seed;
        the NeurIPS rows (one per model, protocol and scalar) go to ``self.neurips``.

        Each row's ``evaluation_seconds`` is its own cost; ``reference_seconds`` what the rows share. Rows are
        stored in the cache (``_row_path``) as they are made: a rerun, e.g. the report run after the study,
        reads them instead of recomputing their attacks and relearning runs."""
        candidates = (
            [(ORIGINAL, None)] * with_original + list(methods.items()) + [(RETRAINED_OTHER_SEED, None)] * with_sanity
        )
        paths = [self._row_path(name, value) for name, value in candidates]
        stored = all(path.exists() for path in paths)
        reference_seconds = 0.0 if stored else self.prepare_references(with_original, with_sanity)
        rows, references = [], []
        started = time.perf_counter()
        for (name, value), path in zip(candidates, paths):
            if path.exists():
                record = json.loads(path.read_text())
                self.neurips += record["neurips"]
                rows.append(record["row"])
                continue
            if not references:  # loaded once: the rows' shared measures are memoised by the models' identity
                references += [self.retrained(0), self.original(0)]
            reference, original_model = references
            began = time.perf_counter()
            if name == ORIGINAL:
                model, seconds = original_model, self.ws.original(0).meta["seconds"]
            elif name == RETRAINED_OTHER_SEED:
                model, seconds = self.retrained(1), self.ws.retrained(self.split, 1).meta["seconds"]
            else:
                model, seconds = self._unlearned(original_model, name, value, seed=0)
            row = {
                "model": name,
                "value": value,
                "seconds": round(seconds, 3),
                **self.measure(model, reference, original_model),
            }
            if self.config.ulira_shadows:
                row.update(self.ulira(name, value))
            neurips = []
            if self.k_for(name):
                neurips, note = self._neurips_rows(name, value)
                if note:
                    row["neurips_note"] = note
            row["evaluation_seconds"] = round(time.perf_counter() - began, 1)
            atomic_write_json(path, {"row": row, "neurips": neurips})
            record = json.loads(path.read_text())  # as a rerun will read it (JSON types)
            self.neurips += record["neurips"]
            rows.append(record["row"])
        for row in rows:
            row["reference_seconds"] = round(reference_seconds, 1)
            row["total_seconds"] = round(reference_seconds + time.perf_counter() - started, 1)
        return rows


def model_predictions(workspace: Workspace, split: ForgetSplit, model: nn.Module) -> dict[str, np.ndarray]:
    """What the NeurIPS score needs of one of the K models: forget predictions, retain and test MAE."""
    retain = np.concatenate([split.retain_train, split.retain_val])
    return {
        "forget_pred": workspace.predict(model, split.forget),
        "retain_mae": np.float64(mean_absolute_error(workspace.ages(retain), workspace.predict(model, retain))),
        "test_mae": np.float64(mean_absolute_error(workspace.ages(split.test), workspace.predict(model, split.test))),
    }


def _k_run_job(shared, item) -> dict[str, np.ndarray]:
    """An executor job: unlearn one original (its weights sent with the job) and predict."""
    workspace, split, originals = shared
    name, value, seed, source = item
    original = workspace.new_model(seed=0)
    original.load_state_dict(originals[source])
    model = workspace.unlearn(name, original.eval(), split, value, seed).model
    return model_predictions(workspace, split, model)


def _ulira_job(shared, item) -> np.ndarray:
    """An executor job: one U-LiRA shadow unlearns its half of the forget set; its forget-set predictions."""
    workspace, forget, halves, originals = shared
    name, value, seed, shadow = item
    original = workspace.new_model(seed=0)
    original.load_state_dict(originals[shadow])
    model = workspace.unlearn(name, original.eval(), halves[shadow], value, seed).model
    return workspace.predict(model, forget)  # the whole forget set, in its order (membership is aligned to it)


def interclass_confusion(
    workspace: Workspace,
    groups: tuple[int, int] = (0, 4),
    per_group: int = 100,
    methods: dict[str, int | None] | None = None,
    seed: int = 0,
) -> list[dict]:
    """The interclass-confusion test (Goel et al.), for ages: swap the labels of ``per_group`` train
    images of two age groups (each age mapped to the same position in the other group), train O on the
    confused data, forget exactly those images, and measure how much confusion is left.

    Confusion of a model on the swapped images = mean of ``(prediction - true) / (swapped - true)``,
    clipped to [0, 1]: 0 = predicts the true age, 1 = predicts the swapped label.
    """
    ws = workspace.with_ensemble(1)
    table = ws.prepared.manifest.table
    rng = np.random.default_rng([seed, 41])
    (low_a, high_a), (low_b, high_b) = FORGET_GROUPS[groups[0]], FORGET_GROUPS[groups[1]]
    train_originals = table[(table["split"] == "train") & (table["source_id"] == -1)]
    available = min(
        int(train_originals["age"].between(low, high).sum()) for low, high in ((low_a, high_a), (low_b, high_b))
    )
    per_group = min(per_group, available // 2)  # a small dataset: swap at most half of a group's images
    if per_group < 5:
        raise OlvidoError(
            f"interclass confusion: groups {groups} have only {available} train images; expected at least 10"
        )
    chosen, relabel = [], {}
    for (low, high), (other_low, other_high) in (
        ((low_a, high_a), (low_b, high_b)),
        ((low_b, high_b), (low_a, high_a)),
    ):
        candidates = train_originals[train_originals["age"].between(low, high)]
        picked = candidates.sample(per_group, random_state=int(rng.integers(1 << 31)))
        for sample_id, age in zip(picked["id"], picked["age"]):
            relabel[int(sample_id)] = float(min(other_low + (age - low), other_high))
        chosen.append(picked["id"].to_numpy())
    confused = np.concatenate(chosen)
    split = split_forget(ws.prepared.manifest, confused, f"ic:{groups[0]}-{groups[1]}:{per_group}:{seed}")
    # The confused copies of augmented images keep the swap too (they are derived data of the same image).
    copies = table[table["source_id"].isin(confused)]
    for copy_id, source in zip(copies["id"], copies["source_id"]):
        relabel[int(copy_id)] = relabel[int(source)]
    original = ws.train(ws.split_ids("train"), ws.split_ids("val"), seed, role="ic-original", relabel=relabel).model
    retrained = ws.train(split.retain_train, split.retain_val, seed, forget=split, role="ic-retrained").model
    true_age = ws.ages(confused)
    swapped = np.array([relabel[int(i)] for i in confused])

    def confusion(model: nn.Module) -> float:
        pull = (ws.predict(model, confused) - true_age) / (swapped - true_age)
        return float(np.clip(pull, 0, 1).mean())

    rows = [
        {
            "model": "original (trained on swapped labels)",
            "confusion": confusion(original),
            "swapped_per_group": per_group,
        },
        {"model": "retrained", "confusion": confusion(retrained), "swapped_per_group": per_group},
    ]
    for method, value in (methods or dict.fromkeys(THESIS_METHODS)).items():
        # the forget set as the original saw it: with its swapped labels
        forget_targets = np.array([relabel[int(i)] for i in split.forget], dtype=np.float32)
        model = ws.unlearn(method, original, split, value, seed, forget_targets=forget_targets).model
        rows.append({"model": method, "confusion": confusion(model), "swapped_per_group": per_group})
    return rows


def feature_injection(
    workspace: Workspace,
    split: ForgetSplit,
    methods: dict[str, int | None] | None = None,
    seed: int = 0,
    epochs: int = 30,
) -> list[dict]:
    """The feature-injection test (Izzo et al.) on a linear head: append one feature that equals the
    standardised label on forget samples and 0 elsewhere, train O (it leans on the feature), then unlearn.
    A method that truly forgets drives the feature's weight back to R's (which never sees it non-zero).
    O is trained on retain-train + forget, R on retain-train, both from a zero weight for the feature.
    Needs fixed feature vectors: the ``head`` scope."""
    ws = workspace
    if ws.model_config.scope != "head":
        raise OlvidoError(f"feature injection needs the head scope (fixed embeddings), not {ws.model_config.scope!r}")
    forgotten = set(split.forget.tolist())
    # With mirroring the cached embeddings are [n, 2, d]; a linear model of their mean is exactly the
    # mirrored linear model.
    embeddings = ws.inputs.mean(dim=1) if ws.model_config.mirrored else ws.inputs

    def dataset(ids: np.ndarray, targets: np.ndarray | None = None) -> ArrayDataset:
        ages = ws.ages(ids)
        injected = np.array(
            [(age - 40.0) / 10.0 if int(i) in forgotten else 0.0 for i, age in zip(ids, ages)], dtype=np.float32
        )
        inputs = torch.cat([embeddings[ws.rows(ids)], torch.from_numpy(injected)[:, None]], dim=1)
        return ArrayDataset(inputs, ages if targets is None else targets, ids)

    def linear(seed_: int) -> nn.Module:
        torch.manual_seed(seed_)
        layer = nn.Linear(embeddings.shape[1] + 1, 1)
        nn.init.zeros_(layer.weight)
        nn.init.constant_(layer.bias, 40.0)
        return nn.Sequential(layer, nn.Flatten(0))

    recipe = FitConfig(
        epochs=epochs,
        batch_size=ws.fit_config.batch_size,
        lr=ws.fit_config.lr,
        patience=None,
        seed=seed,
        device=ws.device,
    )
    train_ids = np.concatenate([split.retain_train, split.forget])
    original = linear(seed)
    fit(original, dataset(train_ids), None, recipe)
    retrained = linear(seed)
    fit(retrained, dataset(split.retain_train), None, recipe)

    def weight(model: nn.Module) -> float:
        return float(model[0].weight[0, -1].detach())

    rows = [
        {"model": "original", "injected_weight": weight(original)},
        {"model": "retrained", "injected_weight": weight(retrained)},
    ]
    for method, value in (methods or dict.fromkeys(THESIS_METHODS)).items():
        config = config_for(method, ws.fit_config, value, seed, ws.device)
        model = unlearn(
            method,
            original,
            dataset(split.retain_train),
            dataset(split.forget),
            dataset(split.retain_val),
            config,
            label_range=ws.label_range,
        ).model
        rows.append({"model": method, "injected_weight": weight(model)})
    reference = abs(rows[0]["injected_weight"]) or 1.0
    for row in rows:
        row["relative_to_original"] = abs(row["injected_weight"]) / reference
    return rows
