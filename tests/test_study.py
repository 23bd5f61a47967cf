import numpy as np
import pandas as pd
import pytest

from olvido.experiments import study as study_module
from olvido.experiments.study import Study, StudyConfig, run_study
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.metrics import forgetting
from olvido.report.study_report import write_report

from test_models import FAST_FIT, needs_weights

TINY = StudyConfig(seeds=(0, 1), groups=(0, 4), epochs=(1, 2), alphas=(5.0, 15.0))


@pytest.fixture(scope="module")
def tiny_workspace(prepared, tmp_path_factory):
    return Workspace(prepared, ModelConfig(init="imagenet", ensemble=1), fit_config=FAST_FIT, cache=tmp_path_factory.mktemp("study"), progress=False)


@needs_weights
def test_runner_resumes_after_an_interruption_without_recomputing(tiny_workspace, monkeypatch):
    computed = []
    real_compute = Study._compute

    def counting(self, method, group, epochs, seed):
        if len(computed) == 5:
            raise KeyboardInterrupt  # killed in the middle of the sixth cell
        computed.append((method, group, epochs, seed))
        return real_compute(self, method, group, epochs, seed)

    monkeypatch.setattr(Study, "_compute", counting)
    with pytest.raises(KeyboardInterrupt):
        Study(tiny_workspace, TINY, progress=False).run_epochs()
    finished = list(computed)
    assert len(finished) == 5

    computed.clear()
    monkeypatch.setattr(Study, "_compute", lambda self, *cell: (computed.append(cell), real_compute(self, *cell))[1])
    table = Study(tiny_workspace, TINY, progress=False).run_epochs()
    assert not set(finished) & set(computed)  # finished cells were loaded, not recomputed
    assert len(table) == 2 * 2 + 2 * 2 * 2  # (O, R) x seeds + methods x epochs x seeds
    computed.clear()
    Study(tiny_workspace, TINY, progress=False).run_epochs()
    assert computed == []  # a third run computes nothing


@needs_weights
def test_cell_metrics_match_the_stored_predictions(tiny_workspace):
    study = Study(tiny_workspace, TINY, progress=False)
    cell = study.cell("finetune", 0, 2, 0)
    reference = study.cell("retrained", 0, None, 0)
    ages = tiny_workspace.ages(cell.predictions["forget_ids"])
    expected = forgetting(ages, cell.predictions["forget_pred"], reference.predictions["forget_pred"], 15.0)
    assert cell.record["forgetting"] == pytest.approx(expected)
    assert reference.record["forgetting"] == 1.0 and reference.record["utility"] == 1.0
    test_ages = tiny_workspace.ages(cell.predictions["test_ids"])
    assert cell.record["test_mae"] == pytest.approx(np.abs(test_ages - cell.predictions["test_pred"]).mean())
    assert cell.record["time_ratio"] == pytest.approx(cell.record["seconds"] / cell.record["retrain_seconds"], rel=1e-3)
    assert set(cell.predictions["test_ids"]) == set(study.split(0).test)


@needs_weights
def test_report_builds_from_a_tiny_run(tiny_workspace, tmp_path):
    result = run_study(tiny_workspace, TINY, progress=False)
    assert set(result.best_epochs) == {"finetune", "random_labels"}
    index = write_report([result], tmp_path / "report", {"command": "test", "date": "today"})
    text = index.read_text()
    for heading in ("Table 3", "Tables 4-7", "Table 8", "Wall time", "What the numbers say"):
        assert heading in text
    for name in ("runs.csv", "alpha.csv", "predictions.csv.gz", "summary.json", "forgetting_vs_alpha.png", "epochs.png", "per_sample_errors_head.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert {"utility", "forgetting", "F", "seconds", "time_ratio"} <= set(runs.columns)
    assert set(runs["experiment"]) == {"epochs", "groups"}
    assert set(runs.loc[runs["experiment"] == "groups", "group"]) == {0, 4}
    predictions = pd.read_csv(tmp_path / "report" / "predictions.csv.gz")
    assert set(predictions["set"]) == {"test", "forget"}
    per_sample = pd.read_csv(tmp_path / "report" / "per_sample_errors_head.csv")
    assert len(per_sample) == min(100, int(result.runs["n_test"].iloc[0])) and {"original", "retrained", "finetune", "random_labels"} <= set(per_sample.columns)
    alpha = pd.read_csv(tmp_path / "report" / "alpha.csv")
    assert set(alpha["alpha"]) == {5.0, 15.0}
    # Forgetting rises with alpha for every model (exp(-d/alpha) grows with alpha)
    means = alpha.groupby(["method", "alpha"])["forgetting"].mean().unstack()
    assert (means[15.0] >= means[5.0]).all()


def test_unknown_methods_are_rejected_up_front():
    from olvido.storage import OlvidoError

    with pytest.raises(OlvidoError, match="expected one of"):
        StudyConfig(methods=("finetune", "teleport"))
