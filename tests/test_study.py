"""The study: resumable cells, metrics that match the stored predictions, a registry-driven report."""

import io
import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from olvido.errors import OlvidoError
from olvido.executor import get_executor
from olvido.experiments.study import (
    ORIGINAL,
    RETRAINED,
    RETRAINED_OTHER,
    Study,
    StudyConfig,
    StudyResult,
    canonical_value,
    comparable_methods,
    memorising_verdicts,
    run_study,
)
from olvido.experiments.verdicts import RETRAINED_OTHER_SEED, VerdictConfig
from olvido.experiments.workspace import Workspace
from olvido.metrics import forgetting
from olvido.report.study_report import (
    NEURIPS_CSV_COLUMNS,
    RetrainingBar,
    _neurips_coverage,
    against_retraining,
    calibrated_score,
    default_vs_tuned,
    format_cell,
    in_column_order,
    leaderboard,
    lossless_values,
    write_report,
)
from olvido.training import FitConfig

from helpers import FAST_FIT, needs_weights, small_workspace
from rederive import rederive

TINY = StudyConfig(
    seeds=(0, 1),
    groups=(0, 4),
    alphas=(5.0, 15.0),
    methods=("finetune", "random_labels"),
    sweeps=(("finetune", (1, 2)), ("random_labels", (1, 2))),
)


@pytest.fixture(scope="module")
def tiny_workspace(prepared, tmp_path_factory, share_features):
    return small_workspace(prepared, share_features(tmp_path_factory.mktemp("study")))


@needs_weights
def test_the_study_resumes_after_an_interruption_without_recomputing(tiny_workspace, monkeypatch):
    computed = []
    real_compute = Study._compute

    def counting(self, method, group, value, seed, job_result=None):
        if len(computed) == 5:
            raise KeyboardInterrupt  # killed in the middle of the sixth cell
        computed.append((method, group, value, seed))
        return real_compute(self, method, group, value, seed, job_result)

    monkeypatch.setattr(Study, "_compute", counting)
    with pytest.raises(KeyboardInterrupt):
        Study(tiny_workspace, TINY, progress=False).run_sweep()
    finished = list(computed)
    assert len(finished) == 5

    computed.clear()

    def recording(self, *cell):
        computed.append(cell[:4])  # (method, group, value, seed)
        return real_compute(self, *cell)

    monkeypatch.setattr(Study, "_compute", recording)
    table = Study(tiny_workspace, TINY, progress=False).run_sweep()
    assert not set(finished) & set(computed)  # finished cells were loaded, not recomputed
    assert len(table) == 3 * 2 + 2 * 2 * 2  # (R, O, R another seed) x seeds + methods x values x seeds
    computed.clear()
    Study(tiny_workspace, TINY, progress=False).run_sweep()
    assert computed == []  # a third run computes nothing
    Study(tiny_workspace, TINY, progress=False).cell("finetune", 0, 2.0, 0)  # 2.0 is the cell of 2
    assert computed == []


@needs_weights
def test_cell_metrics_match_the_stored_predictions(tiny_workspace):
    study = Study(tiny_workspace, TINY, progress=False)
    cell = study.cell("finetune", 0, 2, 0)
    reference = study.cell(RETRAINED, 0, None, 0)
    ages = tiny_workspace.ages(cell.predictions["forget_ids"])
    expected = forgetting(ages, cell.predictions["forget_pred"], reference.predictions["forget_pred"], 15.0)
    assert cell.record["forgetting"] == pytest.approx(expected)
    assert reference.record["forgetting"] == 1.0 and reference.record["utility"] == 1.0
    test_ages = tiny_workspace.ages(cell.predictions["test_ids"])
    assert cell.record["test_mae"] == pytest.approx(np.abs(test_ages - cell.predictions["test_pred"]).mean())
    assert cell.record["time_ratio"] == pytest.approx(cell.record["seconds"] / cell.record["retrain_seconds"], rel=1e-3)
    assert set(cell.predictions["test_ids"]) == set(study.split(0).test)
    gap = np.abs(cell.predictions["forget_pred"] - reference.predictions["forget_pred"]).mean()
    assert cell.record["prediction_gap"] == pytest.approx(gap)
    other = study.cell(RETRAINED_OTHER, 0, None, 0)  # a second retrained model: another seed, not R itself
    assert 0 < other.record["prediction_gap"] and other.record["forgetting"] < 1.0


@needs_weights
def test_report_builds_from_a_tiny_run(tiny_workspace, tmp_path):
    memorising = VerdictConfig(k=0, shadows=0, ulira_shadows=6, relearn_max_epochs=5)
    memorising_fit = FitConfig(epochs=6, batch_size=128, lr=2e-3, patience=None)  # no early stopping
    result = run_study(tiny_workspace, TINY, False, memorising=memorising, memorising_fit=memorising_fit)
    assert set(result.best) == {"finetune", "random_labels"}
    models = [row["model"] for row in result.memorising]
    assert models == [ORIGINAL, "finetune", "random_labels", RETRAINED_OTHER_SEED]
    assert all(0 <= row["ulira_auc"] <= 1 for row in result.memorising)
    summary = result.memorising_summary
    assert summary["fit"]["patience"] is None and summary["original_train_mae"] < summary["original_test_mae"]
    index = write_report([result], tmp_path / "report", {"command": "test", "date": "today"})
    text = index.read_text()
    for heading in (
        "Leaderboard",
        "Table 3",
        "Tables 4-7",
        "Table 8",
        "Wall time",
        "What the numbers say",
        "Verdicts where models memorise",
        "FT",
        "RND",
    ):
        assert heading in text
    files = (
        "runs.csv",
        "leaderboard.csv",
        "alpha.csv",
        "predictions.csv.gz",
        "summary.json",
        "forgetting_vs_alpha.png",
        "sweep_head.png",
        "f_vs_time.png",
        "per_sample_errors_head.png",
    )
    for name in files:
        assert (tmp_path / "report" / name).stat().st_size > 0
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert {"utility", "forgetting", "F", "wasserstein", "prediction_gap", "seconds", "time_ratio"} <= set(runs.columns)
    assert set(runs["experiment"]) == {"sweep", "methods"}
    verdicts = pd.read_csv(tmp_path / "report" / "verdicts.csv")
    assert set(verdicts["regime"]) == {"memorising"} and len(verdicts) == 4
    assert set(runs.loc[runs["experiment"] == "methods", "group"]) == {0, 4}
    board = pd.read_csv(tmp_path / "report" / "leaderboard.csv")
    assert list(board["F"]) == sorted(board["F"], reverse=True)
    assert {ORIGINAL, RETRAINED_OTHER, "finetune", "random_labels"} == set(board["method"])
    predictions = pd.read_csv(tmp_path / "report" / "predictions.csv.gz")
    assert set(predictions["set"]) == {"test", "forget"}
    per_sample = pd.read_csv(tmp_path / "report" / "per_sample_errors_head.csv")
    assert len(per_sample) == min(100, int(result.runs["n_test"].iloc[0]))
    assert {ORIGINAL, RETRAINED, "finetune", "random_labels"} <= set(per_sample.columns)
    alpha = pd.read_csv(tmp_path / "report" / "alpha.csv")
    assert set(alpha["alpha"]) == {5.0, 15.0}
    # Forgetting rises strictly with alpha for every model that differs from R (exp(-d/alpha) grows with alpha)
    means = alpha.groupby(["method", "alpha"])["forgetting"].mean().unstack()
    assert (means[15.0] > means[5.0]).all()


def test_knob_values_are_written_exactly():
    table = pd.DataFrame({"value": [1e-07, 1e-06, None, 2.0], "F": [0.5, 0.5, 0.5, 0.5]})
    assert lossless_values(table)["value"].tolist() == ["1e-07", "1e-06", "", "2.0"]
    read = pd.read_csv(io.StringIO(lossless_values(table).to_csv(index=False, float_format="%.5f")))
    assert read["value"].iloc[0] == 1e-07 and read["value"].iloc[1] == 1e-06  # 5 decimals would print 0.00000


@needs_weights
def test_tuned_configurations_run_beside_the_defaults_and_lead_the_board(tiny_workspace, tmp_path):
    best = run_study(tiny_workspace, TINY, progress=False).best
    same = {"finetune": {"epochs": best["finetune"]}}  # the default's knob value and nothing else: the same cells
    result = run_study(tiny_workspace, TINY, progress=False, tuned=same)
    defaults = result.runs[(result.runs["experiment"] == "methods") & (result.runs["method"] == "finetune")]
    columns = ["group", "seed", "F", "forget_mae"]
    pd.testing.assert_frame_equal(
        result.tuned_runs[columns].reset_index(drop=True), defaults[columns].reset_index(drop=True)
    )
    tuned = {"finetune": {"epochs": 6, "lr": 0.01}, "random_labels": {"epochs": 1}}
    setup = {"seeds": [10000, 10001, 10002], "group": 0, "forget_fraction": 1.0, "max_time_ratio": 0.3}
    result = run_study(tiny_workspace, TINY, progress=False, tuned=tuned, tuned_setups={"finetune": setup})
    assert result.tuned == tuned and len(result.tuned_runs) == 2 * len(TINY.groups) * len(TINY.seeds)
    assert result.tuned_setups == {"finetune": setup, "random_labels": None}
    finetune = result.tuned_runs[result.tuned_runs["method"] == "finetune"]
    assert set(finetune["value"]) == {6} and not np.allclose(finetune["forget_mae"], defaults["forget_mae"])
    board = leaderboard(result).set_index("method")
    assert board.loc["finetune", "setting"] == "tuned: epochs 6, lr 0.01" and board.loc["finetune", "tuned"]
    assert board.loc["finetune", "F"] == pytest.approx(finetune["F"].mean())
    index = write_report([result], tmp_path / "report", {"command": "test", "date": "today"})
    assert "### Default against tuned" in index.read_text()
    table = pd.read_csv(tmp_path / "report" / "default_vs_tuned.csv")
    assert list(table["variant"]) == ["default", "tuned"] * 2
    tuned_on = table.set_index(["method", "variant"])["tuned on"]
    assert tuned_on["finetune", "tuned"] == (
        "seeds 10000, 10001, 10002, 100% of group 0's training originals, within 0.3 of retraining time"
    )
    assert tuned_on["random_labels", "tuned"] == "tuning setup not recorded"
    assert tuned_on.xs("default", level="variant").isna().all()  # a default was not tuned
    assert "### Against retraining: the bar" in index.read_text()
    bar = pd.read_csv(tmp_path / "report" / "against_retraining.csv")
    assert sorted(zip(bar["method"], bar["variant"])) == sorted(zip(table["method"], table["variant"]))
    assert (bar["against the bar"].str.contains("score not measured")).all()  # these verdicts gave no score
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert (runs["experiment"] == "methods (tuned)").sum() == len(result.tuned_runs)
    # every row, tuned ones included, re-derives from predictions.csv.gz with a metric written apart from olvido's
    rederived = rederive(tmp_path / "report")
    assert rederived["missing"] == [] and rederived["checked"] == len(runs)
    assert rederived["max_difference"] < 0.005, rederived
    tuned_rows = runs[(runs["experiment"] == "methods (tuned)") & (runs["method"] == "finetune")]
    assert {json.loads(c)["lr"] for c in tuned_rows["config"]} == {0.01}  # the whole configuration, JSON
    with pytest.raises(OlvidoError, match="unknown config field 'speed'"):
        run_study(tiny_workspace, TINY, progress=False, tuned={"finetune": {"speed": 2}})


@needs_weights
def test_default_vs_tuned_shows_each_settings_calibrated_score(tiny_workspace, monkeypatch):
    import olvido.experiments.verdicts as verdicts_module

    for test in ("interclass_confusion", "feature_injection"):  # their own tests cover them; here they only cost
        monkeypatch.setattr(verdicts_module, test, lambda *args, **kwargs: [])
    config = replace(TINY, methods=("finetune",), sweeps=TINY.sweeps[:1])  # the cells other tests computed
    best = run_study(tiny_workspace, config, progress=False).best
    # a tuned configuration equal to the default's knob value: the same K models, so the same score
    same = {"finetune": {"epochs": best["finetune"]}}
    verdicts = VerdictConfig(k=3, shadows=0, resamples=50, relearn_max_epochs=1)
    result = run_study(tiny_workspace, config, progress=False, verdicts=verdicts, tuned=same)
    assert [(r["model"], r["value"]) for r in result.verdicts[-1:]] == [("finetune", same["finetune"])]
    table = default_vs_tuned(result).set_index("variant")
    for protocol in ("one original", "K originals"):
        column = f"calibrated ({protocol})"
        assert np.isfinite(table.loc["default", column])
        assert table.loc["tuned", column] == pytest.approx(table.loc["default", column])
    assert calibrated_score(result, "finetune", {"epochs": best["finetune"] + 1}, "K originals") is None
    assert format_cell({"lr": 0.000123456, "epochs": 2}) == "tuned: epochs 2, lr 0.000123"


@needs_weights
def test_wall_time_counts_each_cell_once(tiny_workspace):
    result = run_study(tiny_workspace, TINY, progress=False)
    board = leaderboard(result)
    cells = board.set_index("method")["cells"]
    assert cells["finetune"] == len(TINY.groups) * len(TINY.seeds)
    runs = result.runs
    shared = runs[(runs["method"] == ORIGINAL) & (runs["group"] == 0)]
    assert len(shared) == 2 * len(TINY.seeds)  # in both experiments ...
    from olvido.experiments.study import unique_cells

    assert len(unique_cells(shared)) == len(TINY.seeds)  # ... but one cell each


@needs_weights
def test_the_memorising_regime_needs_a_recipe_for_its_scope(tiny_workspace):
    split = Study(tiny_workspace, TINY, progress=False).split(0)
    with pytest.raises(OlvidoError, match="memorising regime: no recipe for scope 'head'"):
        memorising_verdicts(tiny_workspace, split, {"finetune": 1}, VerdictConfig(k=0, shadows=0, ulira_shadows=6))


def test_report_tables_keep_one_column_order_whatever_order_rows_come_in():
    fresh = {"model": "ft", "raw": 0.1, "f_rr": 0.2, "scope": "head", "extra_b": 1, "extra_a": 2}
    from_cache = dict(sorted(fresh.items()))  # the cache stores rows with sorted keys
    for rows in ([fresh], [from_cache], [from_cache, fresh]):
        table = in_column_order(rows, NEURIPS_CSV_COLUMNS)
        assert list(table.columns) == ["model", "raw", "f_rr", "scope", "extra_a", "extra_b"]


def test_the_report_names_the_models_scored_where_only_some_are():
    rows = [{"model": "original"}, {"model": "ft"}, {"model": "ct"}, {"model": RETRAINED_OTHER_SEED}]
    scored = [{"model": m} for m in ("original", "ct", "ct", RETRAINED_OTHER_SEED)]
    sentence = _neurips_coverage(rows, scored)
    assert f"only original, ct, {RETRAINED_OTHER_SEED} are scored" in sentence
    assert _neurips_coverage(rows, scored + [{"model": "ft"}]) == ""


def test_knob_values_have_one_canonical_form():
    assert canonical_value(2.0) == 2 and isinstance(canonical_value(2.0), int)
    assert canonical_value(0.5) == 0.5 and canonical_value(None) is None and canonical_value(float("nan")) is None


def test_study_config_is_checked_up_front():
    with pytest.raises(OlvidoError, match="expected one of"):
        StudyConfig(methods=("finetune", "teleport"))
    with pytest.raises(OlvidoError, match="not among the study's methods"):
        StudyConfig(methods=("finetune",), best=(("scrub", 2),))
    with pytest.raises(OlvidoError, match="group 7"):
        StudyConfig(groups=(0, 7))
    with pytest.raises(OlvidoError, match="do not support the head scope"):
        StudyConfig(methods=("ct",)).methods_for("head")
    assert "ct" not in comparable_methods("head") and "ct" in comparable_methods("last")
    assert "retrain" not in comparable_methods("last")


@needs_weights
def test_cells_computed_on_ray_match_cells_computed_here(prepared, tiny_workspace, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is installed by `make test`; this must not skip there")
    config = StudyConfig(seeds=(0,), groups=(0,), methods=("finetune",), sweeps=(("finetune", (1,)),))
    tables = {}
    for name in ("local", "ray"):
        # fresh caches (every model trained under the executor), the same embeddings (no re-extraction)
        shutil.copytree(tiny_workspace.cache / "features", tmp_path / name / "features")
        workspace = Workspace(
            prepared, tiny_workspace.model_config, fit_config=FAST_FIT, cache=tmp_path / name, progress=False
        )
        # one torch thread per job locally, as in every Ray task: sums split over two threads round differently
        options = dict(threads=1) if name == "local" else dict(cpus=2)
        with get_executor(name, progress=False, **options) as executor:
            tables[name] = Study(workspace, config, progress=False, executor=executor).run_sweep()
        assert len(list((tmp_path / name / "cells").glob("*.json"))) == len(tables[name]) == 4
    assert not ray.is_initialized()
    timing = ["seconds", "retrain_seconds", "time_ratio"]
    pd.testing.assert_frame_equal(tables["local"].drop(columns=timing), tables["ray"].drop(columns=timing))


def test_the_retraining_bar_counts_each_shortfall_by_how_far_it_misses():
    bar = RetrainingBar(min_utility=1.0, min_calibrated=0.8, max_time_ratio=0.3)
    assert bar.shortfalls(0.9, 1.0, 0.8, 0.3, sanity_forgetting=0.9) == []  # every criterion met at its edge
    assert bar.judge(0.9, 1.0, 0.8, 0.3, sanity_forgetting=0.9) == "meets"
    assert bar.shortfalls(0.88, 0.97, 0.5, 0.45, sanity_forgetting=0.9) == [
        "Fg -0.020",
        "U -0.030",
        "score -0.30",
        "time +0.15",
    ]
    for unscored in (None, float("nan")):  # no score cannot meet the bar
        assert bar.judge(0.95, 1.1, unscored, 0.1, sanity_forgetting=0.9) == "misses: score not measured"


def _synthetic_result() -> StudyResult:
    """Two methods on groups 0 (the sweep group) and 1, seeds 0 and 1, FT also tuned; hand-picked numbers."""

    def cells(method, value, group, forgetting, utility, time_ratio):
        return [
            {
                "experiment": "methods",
                "method": method,
                "value": value,
                "group": group,
                "seed": seed,
                "forgetting": f,
                "utility": u,
                "time_ratio": t,
                "F": 2 * f * u / (f + u),
            }
            for seed, (f, u, t) in enumerate(zip(forgetting, utility, time_ratio))
        ]

    runs = (
        cells(RETRAINED_OTHER, None, 0, (0.90, 0.92), (1.0, 1.0), (1.0, 1.0))
        + cells("finetune", 2, 0, (0.95, 0.93), (1.01, 1.03), (0.2, 0.3))
        + cells("random_labels", 1, 0, (0.92, 0.92), (1.0, 1.0), (0.1, 0.1))
        + cells(RETRAINED_OTHER, None, 1, (0.1, 0.1), (0.1, 0.1), (9.0, 9.0))  # another group: never judged
        + cells("finetune", 2, 1, (0.1, 0.1), (0.1, 0.1), (9.0, 9.0))
    )
    tuned = {"finetune": {"epochs": 5, "lr": 0.001}}
    tuned_runs = cells("finetune", 5, 0, (0.90, 0.90), (0.99, 0.97), (0.4, 0.4))
    neurips = [
        {"model": "finetune", "value": 2, "protocol": "K originals", "scalar": "prediction", "calibrated": 0.85},
        {"model": "finetune", "value": 2, "protocol": "one original", "scalar": "prediction", "calibrated": 0.1},
        {
            "model": "finetune",
            "value": tuned["finetune"],
            "protocol": "one original",
            "scalar": "prediction",
            "calibrated": 0.5,
        },
        {"model": "finetune", "value": 2, "protocol": "K originals", "scalar": "neg_abs_error", "calibrated": 0.0},
    ]
    empty = pd.DataFrame()
    return StudyResult(
        scope="head",
        runs=pd.DataFrame(runs),
        alpha=empty,
        per_sample=empty,
        best={"finetune": 2, "random_labels": 1},
        seconds=0.0,
        model_summary={},
        config={"sweep_group": 0},
        predictions=empty,
        neurips=neurips,
        tuned_runs=pd.DataFrame(tuned_runs),
        tuned=tuned,
    )


def test_against_retraining_judges_every_setting_on_the_sweep_group_by_hand():
    table = against_retraining(_synthetic_result())
    assert list(zip(table["method"], table["variant"])) == [  # fewest shortfalls first
        ("finetune", "default"),
        ("random_labels", "default"),
        ("finetune", "tuned"),
    ]
    rows = table.set_index(["method", "variant"])
    assert rows["sanity_forgetting"].tolist() == pytest.approx([0.91] * 3)  # R (another seed) on group 0 only
    default = rows.loc[("finetune", "default")]
    assert default[["forgetting", "utility", "time_ratio"]].tolist() == pytest.approx([0.94, 1.02, 0.25])
    # K originals is preferred over one original, and the prediction scalar over the others
    assert (default["calibrated"], default["protocol"]) == (0.85, "K originals")
    assert default["against the bar"] == "meets"
    assert rows.loc[("random_labels", "default"), "against the bar"] == "misses: score not measured"
    tuned = rows.loc[("finetune", "tuned")]
    assert (tuned["setting"], tuned["protocol"]) == ("tuned: epochs 5, lr 0.001", "one original")
    assert tuned["against the bar"] == "misses: Fg -0.010, U -0.020, score -0.30, time +0.10"
    assert tuned["shortfalls"] == 4
