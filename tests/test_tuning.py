"""Tuning against retraining: the objective by hand, every method's search space, the leak guard, resuming,
the tuned-configurations file and the command."""

import json
import math
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

import olvido.experiments.tuning as tuning_module
from olvido.cli import main
from olvido.data import parse_forget
from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor
from olvido.experiments.tuning import (
    BASELINES,
    FIRST_TUNING_SEED,
    TUNED_FILE,
    Tuner,
    TuningConfig,
    load_tuned,
    load_tuned_setups,
    save_tuned,
    tuning_split,
)
from olvido.experiments.workspace import Workspace
from olvido.methods import get_method, list_methods, make_config
from olvido.metrics import retraining_gaps
from olvido.report.tuning_report import write_tuning
from olvido.training import FitConfig

from helpers import needs_weights, small_workspace

TINY = TuningConfig(trials=2, retain_samples=300)


class KilledInATrial(LocalExecutor):
    """Trains what tuning needs (``imap``), then is killed once the first trial's first job has come back
    (trials run through ``pool``)."""

    def __init__(self):
        super().__init__(progress=False)

    def pool(self, function, shared=None):
        pool = super().pool(function, shared)
        run_next = pool.next

        def next_then_killed():
            run_next()
            raise KeyboardInterrupt

        pool.next = next_then_killed
        return pool


def test_retraining_gaps_by_hand():
    targets = {"retain": [30.0, 40.0], "forget": [20.0, 22.0], "val": [50.0, 50.0]}
    reference = {"retain": [31.0, 41.0], "forget": [24.0, 26.0], "val": [52.0, 48.0]}  # MAEs 1, 4, 2
    model = {"retain": [32.0, 42.0], "forget": [21.0, 23.0], "val": [52.0, 48.0]}  # MAEs 2, 1, 2
    gaps = retraining_gaps(targets, model, reference)
    assert gaps["retain_gap"] == pytest.approx(1.0)  # |2 - 1| / 1
    assert gaps["forget_gap"] == pytest.approx(0.75)  # |1 - 4| / 4
    assert gaps["val_gap"] == 0.0
    assert gaps["forget_wasserstein"] == pytest.approx(3 / 4)  # every forget prediction 3 years apart, over 4
    assert gaps["objective"] == pytest.approx((1.0 + 0.75 + 0.0 + 0.75) / 4)
    assert retraining_gaps(targets, reference, reference)["objective"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        retraining_gaps({"retain": [1.0]}, model, reference)
    with pytest.raises(ValueError, match="expected 2 samples"):
        retraining_gaps(targets, {**model, "val": [50.0]}, reference)
    with pytest.raises(ValueError, match="MAE is 0"):
        retraining_gaps(targets, model, {**reference, "val": [50.0, 50.0]})


@pytest.mark.parametrize("method", list_methods())
def test_every_search_space_is_made_of_config_fields_the_config_accepts_at_both_ends(method):
    spec = get_method(method)
    if not spec.space:
        assert method == "retrain"  # the reference: nothing to tune
        return
    for end in ("low", "high"):
        values = {name: (int if p.integer else float)(getattr(p, end)) for name, p in spec.space}
        make_config(method, **values)  # raises on a field the config does not have or a value it refuses


def test_tuning_config_refuses_the_reported_seeds_and_bad_values():
    with pytest.raises(OlvidoError, match=r"tuning seeds \[0, 1, 2\]: expected at least three distinct seeds >= 10000"):
        TuningConfig(seeds=(0, 1, 2))
    with pytest.raises(OlvidoError, match="at least three"):
        TuningConfig(seeds=(10_000, 10_001))
    with pytest.raises(OlvidoError, match="forget_fraction"):
        TuningConfig(forget_fraction=0)
    with pytest.raises(OlvidoError, match="trials"):
        TuningConfig(trials=0)
    with pytest.raises(OlvidoError, match=r"max_time_ratio 0: expected a share of retraining time > 0"):
        TuningConfig(max_time_ratio=0)


def test_an_unset_time_budget_leaves_the_study_identity_as_before_and_a_set_one_changes_it():
    # studies named before the budget existed (and the tuned.yaml entries that cite them) keep their names
    assert set(TuningConfig().identity()) == {
        "seeds",
        "group",
        "forget_fraction",
        "retain_samples",
        "sampler_seed",
        "prune",
    }
    assert TuningConfig(max_time_ratio=0.3).identity()["max_time_ratio"] == 0.3
    assert TuningConfig(trials=7).identity() == TuningConfig(trials=50).identity()


@pytest.fixture(scope="module")
def workspace(prepared, tmp_path_factory, share_features):
    # short fixed trainings: tuning needs valid references, not good ones
    quick = FitConfig(epochs=8, batch_size=256, lr=2e-3, patience=None)
    return small_workspace(prepared, share_features(tmp_path_factory.mktemp("tuning")), quick)


@needs_weights
def test_the_tuning_forget_set_comes_from_the_groups_training_originals_only(workspace):
    split = tuning_split(workspace, 0, 0.5)
    table = workspace.prepared.manifest.table.set_index("id")
    group = parse_forget(workspace.prepared.manifest, "group:0").forget
    train_part = [i for i in group if table.loc[i, "split"] == "train"]
    assert set(split.forget) <= set(train_part) and len(split.forget) == round(0.5 * len(train_part))
    assert np.array_equal(split.forget, tuning_split(workspace, 0, 0.5).forget)  # seeded: the same every time


@needs_weights
def test_tuning_never_touches_a_reported_seed_or_a_test_image(workspace, tmp_path, monkeypatch):
    read, seeds = [], []
    dataset, train, ensure_trained = Workspace.dataset, Workspace.train, Workspace.ensure_trained

    def spy_dataset(self, ids, targets=None):
        read.append(np.asarray(ids))
        return dataset(self, ids, targets)

    def spy_train(self, train_ids, val_ids, seed=0, *args, **kwargs):  # every model trained or loaded
        seeds.append(seed)
        return train(self, train_ids, val_ids, seed, *args, **kwargs)

    def spy_ensure_trained(self, jobs, executor=None):  # every training handed to an executor
        seeds.extend(job["seed"] for job in jobs)
        return ensure_trained(self, jobs, executor)

    monkeypatch.setattr(Workspace, "dataset", spy_dataset)
    monkeypatch.setattr(Workspace, "train", spy_train)
    monkeypatch.setattr(Workspace, "ensure_trained", spy_ensure_trained)
    result = Tuner(workspace, "finetune", TINY, f"sqlite:///{tmp_path / 'o.db'}", progress=False).run()
    touched = set(np.concatenate(read).tolist())
    assert touched and not touched & set(workspace.split_ids("test").tolist())
    assert set(seeds) == set(TINY.seeds) and min(seeds) >= FIRST_TUNING_SEED  # originals and retrained models
    assert result.trials["complete"] + result.trials["pruned"] == 2 and result.best_value >= 0
    assert set(result.best_params) == {"epochs", "lr"}
    assert result.best_terms["time_ratio"] > 0


@needs_weights
def test_a_killed_tuning_resumes_and_ends_with_the_budget_of_trials(workspace, tmp_path):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    killed = KilledInATrial()
    with pytest.raises(KeyboardInterrupt):
        Tuner(workspace, "ssd", TINY, storage, executor=killed, progress=False).run()
    tuner = Tuner(workspace, "ssd", TINY, storage, progress=False)
    result = tuner.run()
    study = optuna.load_study(study_name=tuner.study_name, storage=storage)
    states = [t.state.name for t in study.trials]
    assert states[0] == "FAIL" and study.trials[0].user_attrs["interrupted"]  # the trial the kill cut short
    assert result.trials["complete"] + result.trials["pruned"] + result.trials["fail"] == 2
    more = Tuner(workspace, "ssd", TuningConfig(trials=3, retain_samples=300), storage, progress=False)
    assert more.study_name == tuner.study_name  # the budget is not part of the study: a bigger one continues it
    assert sum(more.run().trials.values()) == 3 and len(study.trials) == 4


class TwoSlots(LocalExecutor):
    """A local executor that claims two workers; records how many jobs were pending at each result."""

    slots = 2

    def __init__(self):
        super().__init__(progress=False)
        self.pending = []

    def pool(self, function, shared=None):
        pool = super().pool(function, shared)
        run_next = pool.next

        def next_recorded():
            self.pending.append(len(pool))
            return run_next()

        pool.next = next_recorded
        return pool


@needs_weights
def test_tuning_keeps_every_slot_busy_and_completes_each_trial_over_all_its_seeds(workspace, tmp_path):
    executor = TwoSlots()
    config = TuningConfig(trials=3, retain_samples=300)
    tuner = Tuner(workspace, "ssd", config, f"sqlite:///{tmp_path / 'o.db'}", executor=executor, progress=False)
    result = tuner.run()
    # 3 trials x 3 seeds = 9 runs, none pruned (fewer than the pruner's startup trials). Two runs are pending
    # at every result except where nothing could start: after the second trial ends the budget allows no new
    # trial and the third trial's other seeds wait for its first (the pruning decision), and at the last run
    assert executor.pending == [2] * 6 + [1, 2, 1]
    assert result.trials == {"complete": 3, "pruned": 0, "fail": 0}
    study = optuna.load_study(study_name=tuner.study_name, storage=tuner.storage)
    for trial in study.trials:
        assert trial.value == pytest.approx(trial.user_attrs["objective"])  # the mean over the three seeds
        assert list(trial.intermediate_values) == [0]  # reported once, after its first seed


@needs_weights
def test_tuned_configurations_round_trip_with_a_summary_and_plots(workspace, tmp_path):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    result = Tuner(workspace, "ssd", TINY, storage, progress=False).run()
    summary = write_tuning(tmp_path / "out", [result])
    tuned = load_tuned(tmp_path / "out")
    assert tuned == {"head": {"ssd": result.best_params}} and set(result.best_params) == {"alpha", "dampening"}
    entry = yaml.safe_load((tmp_path / "out" / TUNED_FILE).read_text())["head"]["ssd"]
    assert entry["setup"] == {"seeds": list(TINY.seeds), "group": TINY.group, "forget_fraction": TINY.forget_fraction}
    table = pd.read_csv(tmp_path / "out" / "tuning.csv")
    methods = table[~table["reference"]]
    assert list(methods["method"]) == ["ssd"] and methods["objective"].iloc[0] == round(result.best_value, 4)
    references = table[table["reference"]].set_index("method")
    assert sorted(references.index) == sorted(BASELINES.values())
    for name, terms in result.baselines.items():
        assert references.loc[BASELINES[name], "objective"] == round(terms["objective"], 4)
    assert "| head | ssd |" in summary.read_text() and "| head | O (untouched) |" in summary.read_text()
    for name in ("tuning-head-ssd-history.png", "tuning-head-ssd-importances.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    write_tuning(tmp_path / "out", [result])  # rewriting replaces the rows instead of adding some
    assert len(pd.read_csv(tmp_path / "out" / "tuning.csv")) == 3
    (tmp_path / "out" / TUNED_FILE).write_text("head:\n  finetune:\n    params: {epochs: 2, speed: 9}\n")
    with pytest.raises(OlvidoError, match="unknown config field 'speed'"):
        load_tuned(tmp_path / "out")
    with pytest.raises(OlvidoError, match="no tuned.yaml there"):
        load_tuned(tmp_path)


def test_several_tuned_folders_combine_in_order_and_the_last_one_wins(tmp_path):
    half = {"seeds": [10000, 10001, 10002], "group": 0, "forget_fraction": 0.5}
    budget = dict(half, forget_fraction=1.0, max_time_ratio=0.3)
    folders = {
        "first": {
            "head": {"finetune": {"params": {"epochs": 2, "lr": 0.001}, "setup": half}},
            "last": {
                "finetune": {"params": {"epochs": 4}, "setup": half},
                "random_labels": {"params": {"epochs": 3}},  # written before setups were recorded
            },
        },
        "second": {"last": {"finetune": {"params": {"epochs": 1, "lr": 0.002}, "setup": budget}}},
    }
    for name, content in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / TUNED_FILE).write_text(yaml.safe_dump(content))
    first, second = tmp_path / "first", tmp_path / "second"
    assert load_tuned([first, second]) == {
        "head": {"finetune": {"epochs": 2, "lr": 0.001}},
        "last": {"finetune": {"epochs": 1, "lr": 0.002}, "random_labels": {"epochs": 3}},
    }
    assert load_tuned([second, first])["last"]["finetune"] == {"epochs": 4}  # the order decides
    assert load_tuned(first) == load_tuned([first])  # one folder, as a path or a list
    assert load_tuned_setups([first, second], "last") == {"finetune": budget, "random_labels": None}
    assert load_tuned_setups([first, second], "all") == {}
    with pytest.raises(OlvidoError, match="missing: no tuned.yaml there"):
        load_tuned([first, tmp_path / "missing"])
    with pytest.raises(OlvidoError, match="no folder given"):
        load_tuned([])


@needs_weights
def test_the_baselines_score_the_untouched_original_and_the_next_seeds_retrained_model(workspace, tmp_path):
    tuner = Tuner(workspace, "ssd", TINY, f"sqlite:///{tmp_path / 'o.db'}", progress=False)
    baselines = tuner.baselines()
    split, seeds = tuner.split, TINY.seeds
    sets = {"retain": tuner.retain_ids, "forget": split.forget, "val": split.retain_val}
    truth = {name: workspace.ages(ids) for name, ids in sets.items()}

    def predictions(model):
        return {name: workspace.predict(model, ids) for name, ids in sets.items()}

    retrained = {seed: predictions(workspace.retrained(split, seed).model) for seed in seeds}
    original = [retraining_gaps(truth, predictions(workspace.original(s).model), retrained[s]) for s in seeds]
    others = [retraining_gaps(truth, retrained[seeds[(i + 1) % 3]], retrained[s]) for i, s in enumerate(seeds)]
    for name, expected in (("original", original), ("retrained", others)):
        for key in ("retain_gap", "forget_gap", "val_gap", "forget_wasserstein", "objective"):
            assert baselines[name][key] == pytest.approx(np.mean([terms[key] for terms in expected]))
    seconds = [workspace.retrained(split, seed).meta["seconds"] for seed in seeds]
    assert baselines["original"]["time_ratio"] == 0.0  # the next seed's retraining time over this seed's:
    assert baselines["retrained"]["time_ratio"] == pytest.approx(
        np.mean([seconds[(i + 1) % 3] / seconds[i] for i in range(3)])
    )
    # the original was trained on the forget set and the retrained models were not: it sits further from them
    assert baselines["original"]["objective"] > baselines["retrained"]["objective"]


@needs_weights
def test_a_method_with_nothing_to_tune_or_outside_its_scopes_is_a_one_line_error(workspace):
    with pytest.raises(OlvidoError, match="'retrain' has nothing to tune"):
        Tuner(workspace, "retrain", TINY)
    with pytest.raises(OlvidoError, match="does not support the head scope"):
        Tuner(workspace, "ct", TINY)


@needs_weights
def test_the_tune_command_writes_the_tuned_folder_and_fails_in_one_line(tmp_path, capsys):
    common = ["--data", "synthetic:300", "--init", "imagenet", "--ensemble", "1", "--no-mirror"]
    base = ["-q", "--cache", str(tmp_path / "cache"), "tune"]
    out = tmp_path / "tuned"
    assert main([*base, "finetune", *common, "--trials", "1", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tuned"][0]["method"] == "finetune" and report["tuned"][0]["trials"]["complete"] == 1
    assert set(load_tuned(out)["head"]) == {"finetune"}
    assert main([*base, "retrain", *common]) == 2
    assert "nothing to tune" in capsys.readouterr().err
    assert main([*base, "finetune", *common, "--tuning-seeds", "0,1,2"]) == 2
    assert "expected at least three distinct seeds >= 10000" in capsys.readouterr().err


@needs_weights
def test_a_time_budget_prunes_slow_trials_at_their_first_seed_and_only_a_fast_one_can_win(
    workspace, tmp_path, monkeypatch
):
    # The seconds are planted (the predictions are real): SSD at alpha at or above the middle of its (log)
    # tuning range "takes" a million seconds, far over any budget, below it no time at all; the sampler's seed
    # decides the alphas, so the budget must steer the choice, not luck.
    alpha_range = dict(get_method("ssd").space)["alpha"]
    middle = math.sqrt(alpha_range.low * alpha_range.high)
    real_job = tuning_module._trial_job

    def planted_seconds(shared, item):
        _, predictions = real_job(shared, item)
        return (1e6 if item[1]["alpha"] >= middle else 0.0), predictions

    monkeypatch.setattr(tuning_module, "_trial_job", planted_seconds)
    config = TuningConfig(trials=6, retain_samples=300, max_time_ratio=0.5, prune=False)
    tuner = Tuner(workspace, "ssd", config, f"sqlite:///{tmp_path / 'o.db'}", progress=False)
    result = tuner.run()
    study = optuna.load_study(study_name=tuner.study_name, storage=tuner.storage)
    slow = [t for t in study.trials if t.params["alpha"] >= middle]
    fast = [t for t in study.trials if t.params["alpha"] < middle]
    assert slow and fast  # the seeded sampler drew both kinds
    for trial in slow:  # over budget at the first seed: pruned there, the other seeds never run
        assert trial.state.name == "PRUNED" and trial.user_attrs["over_time_budget"]
        assert trial.constraints["time_ratio"] > 0
    assert all(t.state.name == "COMPLETE" and t.constraints["time_ratio"] < 0 for t in fast)
    assert result.best_params["alpha"] < middle and result.best_terms["time_ratio"] == 0.0
    path = save_tuned(tmp_path / "out", result)
    assert yaml.safe_load(path.read_text())[result.scope]["ssd"]["setup"]["max_time_ratio"] == 0.5
    with pytest.raises(OlvidoError, match=r"tuning ssd: no completed trial ran within max_time_ratio 1e-09"):
        # every run now takes a million seconds or none: a budget that none meets is a one-line error
        monkeypatch.setattr(tuning_module, "_trial_job", lambda shared, item: (1.0, real_job(shared, item)[1]))
        Tuner(workspace, "ssd", replace(config, max_time_ratio=1e-9, trials=2), tuner.storage, progress=False).run()
