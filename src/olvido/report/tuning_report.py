"""What ``olvido tune`` leaves in its folder: ``tuned.yaml`` (read back by ``olvido run --tuned``), a summary
table (``tuning.csv`` and ``tuning.md``, one row per scope and method) and, per study, the optimisation history
and the parameter importances as PNG plots."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from olvido.experiments.tuning import BASELINES, TuningResult, save_tuned  # noqa: E402
from olvido.report.study_report import format_params, markdown_table  # noqa: E402
from olvido.storage import atomic_write_text, atomic_write_with  # noqa: E402

SUMMARY = "tuning.csv"


def write_tuning(folder: str | Path, results: list[TuningResult]) -> Path:
    """Adds each result to the folder's tuned configurations, summary and plots (an earlier row of the same
    scope and method is replaced); returns the Markdown summary's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, references = [], {}
    for result in results:
        save_tuned(folder, result)
        _plots(folder, result)
        rows.append(
            {
                **_terms_row(result.scope, result.method, result.best_terms, reference=False),
                "complete": result.trials["complete"],
                "pruned": result.trials["pruned"],
                "failed": result.trials["fail"],
                "minutes": result.minutes,
                "params": format_params(result.best_params, "="),
                "study": result.study_name,
            }
        )
        for name, terms in result.baselines.items():  # the same for every method of a scope: the latest wins
            references[result.scope, name] = _terms_row(result.scope, BASELINES[name], terms, reference=True)
    path = folder / SUMMARY
    table = pd.DataFrame(rows + list(references.values()))
    if path.exists():
        earlier = pd.read_csv(path)
        if "reference" not in earlier:  # written before the baselines were
            earlier.insert(2, "reference", False)
        keep = ~earlier.set_index(["scope", "method"]).index.isin(table.set_index(["scope", "method"]).index)
        table = pd.concat([earlier[keep], table], ignore_index=True)
    table = table.sort_values(["scope", "objective"]).reset_index(drop=True)
    table = table.astype({column: "Int64" for column in COUNTS})  # whole numbers, empty on reference rows
    atomic_write_with(path, lambda tmp: table.to_csv(tmp, index=False))
    shown = ["scope", "method", "objective", "retain_gap", "forget_gap", "val_gap", "forget_wasserstein"]
    shown += ["time_ratio", "complete", "pruned", "failed", "minutes", "params"]
    cells = [[_trial_cell(column, value) for column, value in zip(shown, row)] for row in table[shown].values.tolist()]
    text = (
        "# Tuned methods\n\nBest trial per method (mean over the tuning seeds; lower is closer to retraining): "
        "MAE gaps to the retrained model on retain, forget and validation data (relative), the Wasserstein "
        "distance of forget predictions (over R's forget MAE), unlearning time over retraining time, and the "
        "trials by state. Two reference rows per scope, on the same seeds and sets: the untouched original "
        f"({BASELINES['original']}; a tuned method above it is better left unused) and a model retrained with "
        f"the next tuning seed ({BASELINES['retrained']}; the floor that the seeds' own noise sets). Plots: "
        "`tuning-SCOPE-METHOD-history.png`, `tuning-SCOPE-METHOD-importances.png`.\n\n"
        + markdown_table(shown, cells)
        + "\n"
    )
    markdown = folder / "tuning.md"
    atomic_write_text(markdown, text)
    return markdown


TRIAL_COLUMNS = ("complete", "pruned", "failed", "minutes", "params")  # empty on a reference row
COUNTS = ("complete", "pruned", "failed")


def _trial_cell(column: str, value):
    """A summary cell as printed: '-' where a reference row has no trials."""
    return "-" if column in TRIAL_COLUMNS and pd.isna(value) else value


def _terms_row(scope: str, method: str, terms: dict, reference: bool) -> dict:
    return {
        "scope": scope,
        "method": method,
        "reference": reference,
        "objective": round(terms["objective"], 4),
        **{k: round(terms[k], 4) for k in ("retain_gap", "forget_gap", "val_gap", "forget_wasserstein")},
        "time_ratio": round(terms["time_ratio"], 3),
    }


def _plots(folder: Path, result: TuningResult) -> None:
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    stem = folder / f"tuning-{result.scope}-{result.method}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = optuna.visualization.matplotlib.plot_optimization_history(study)
        axes.set_title(f"{result.method} ({result.scope}): objective by trial")
        _save(axes.figure, stem.with_name(stem.name + "-history.png"))
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(completed) >= 2 and len(result.best_params) >= 2:  # importances need a comparison
            axes = optuna.visualization.matplotlib.plot_param_importances(study)
            axes.set_title(f"{result.method} ({result.scope}): parameter importances")
            _save(axes.figure, stem.with_name(stem.name + "-importances.png"))


def _save(figure, path: Path) -> None:
    figure.set_size_inches(7, 4)
    figure.tight_layout()
    atomic_write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)
