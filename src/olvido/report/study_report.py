"""The study report: ``index.md`` with the thesis's tables (its numbers beside ours), CSVs, PNG plots.

    write_report([head_result, last_result], Path("results"), meta)

Files: ``index.md``; ``runs.csv`` (every cell: metrics, wall time, ratio to retraining); ``alpha.csv``;
``per_sample_errors_<scope>.csv`` (100 fixed test images); ``predictions.csv.gz`` (every test and forget-set
prediction); ``summary.json``; ``forgetting_vs_alpha.png``, ``per_sample_errors_<scope>.png``,
``epochs.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from olvido.data.protocol import FORGET_GROUPS  # noqa: E402
from olvido.experiments.study import ORIGINAL, RETRAINED, StudyResult  # noqa: E402
from olvido.report import thesis_numbers as thesis  # noqa: E402
from olvido.storage import atomic_write_json, atomic_write_text, atomic_write_with  # noqa: E402

LABELS = {ORIGINAL: "O", RETRAINED: "R", "finetune": "FT", "random_labels": "RND"}
COLOURS = {ORIGINAL: "tab:blue", RETRAINED: "tab:green", "finetune": "tab:orange", "random_labels": "tab:red"}


def _label(method: str) -> str:
    return LABELS.get(method, method)


def mean_std(values: pd.Series, digits: int = 2) -> str:
    values = values.dropna()
    if len(values) == 0:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cells(runs: pd.DataFrame, experiment: str, **where) -> pd.DataFrame:
    table = runs[runs["experiment"] == experiment]
    for column, value in where.items():
        table = table[table[column].isna()] if value is None else table[table[column] == value]
    return table


def _models_section(result: StudyResult) -> str:
    summary = result.model_summary
    originals = summary["original_test_mae"]
    test_mae = pd.Series([o["test_mae"] for o in originals])
    group_names = [f"{low}-{high}" for low, high in FORGET_GROUPS]
    rows = [["M_O (all test)", mean_std(test_mae)]]
    for name in group_names:
        rows.append([f"M_O on test aged {name}", mean_std(pd.Series([o["test_mae_by_group"][name] for o in originals]))])
    for group in sorted(result.runs["group"].unique()):
        retrained = _cells(result.runs, "groups", method=RETRAINED, group=group)
        if len(retrained):
            rows.append([f"M_R^{group} (forget {group_names[group]}), all test", mean_std(retrained["test_mae"])])
    pretrain = summary.get("pretrain") or {}
    text = [
        f"Backbone `{summary['architecture']['backbone']}` ({summary['architecture']['weights']}), scope "
        f"`{result.scope}`, ensembles of {summary['architecture']['ensemble']}, fit recipe `{summary['fit']}`.",
    ]
    if pretrain:
        text.append(
            f"Face pretraining on {pretrain['pool']} left-out images: validation MAE {pretrain['val_mae']:.2f} "
            f"(ages 20-60: {pretrain['val_mae_20_60']:.2f}), {pretrain['seconds']:.0f} s when it ran."
        )
    text.append(f"Thesis: M_O {thesis.ORIGINAL['test_mae']}, M_R^0 {thesis.RETRAINED_TEST_MAE} (ResNet50 VGGFace2, 224 px, end to end).")
    return "\n\n".join(text) + "\n\n" + markdown_table(["model", "test MAE (years, mean ± std over seeds)"], rows)


def _alpha_section(result: StudyResult) -> str:
    alpha = result.alpha
    methods = [ORIGINAL] + [m for m in result.best_epochs]
    header = ["alpha"] + [f"{_label(m)} (ours)" for m in methods] + ["O / FT / RND (thesis)"]
    rows = []
    for value in sorted(alpha["alpha"].unique()):
        row = [f"{value:g}"]
        for method in methods:
            row.append(mean_std(alpha[(alpha["alpha"] == value) & (alpha["method"] == method)]["forgetting"]))
        published = thesis.ALPHA.get(int(value))
        row.append(" / ".join(f"{v:.2f}" for v in published) if published else "-")
        rows.append(row)
    best = ", ".join(f"{_label(m)} {e} epochs" for m, e in result.best_epochs.items())
    return f"Group {result.config['sweep_group']}, methods at their best epochs ({best}).\n\n" + markdown_table(header, rows)


def _epochs_section(result: StudyResult) -> str:
    runs = result.runs
    parts = []
    o = _cells(runs, "epochs", method=ORIGINAL)
    r = _cells(runs, "epochs", method=RETRAINED)
    parts.append(
        markdown_table(
            ["model", "utility", "test MAE", "forgetting", "F", "thesis (U / MAE / Fg / F)"],
            [
                ["M_O", mean_std(o["utility"]), mean_std(o["test_mae"]), mean_std(o["forgetting"]), mean_std(o["F"]),
                 f"{thesis.ORIGINAL['utility']} / {thesis.ORIGINAL['test_mae']} / {thesis.ORIGINAL['forgetting']} / {thesis.ORIGINAL['F']}"],
                ["M_R", mean_std(r["utility"]), mean_std(r["test_mae"]), mean_std(r["forgetting"]), mean_std(r["F"]),
                 f"1 / {thesis.RETRAINED_TEST_MAE} / 1 / 1"],
            ],
        )
    )
    for method in result.best_epochs:
        rows = []
        for epochs in sorted(_cells(runs, "epochs", method=method)["epochs"].unique()):
            cells = _cells(runs, "epochs", method=method, epochs=epochs)
            published = thesis.EPOCH_SWEEP.get(method, {})
            index = thesis.EPOCHS.index(int(epochs)) if int(epochs) in thesis.EPOCHS else None
            reference = " / ".join(f"{published[k][index]}" for k in ("utility", "test_mae", "forgetting", "F")) if published and index is not None else "-"
            rows.append([int(epochs), mean_std(cells["utility"]), mean_std(cells["test_mae"]), mean_std(cells["forgetting"]),
                         mean_std(cells["F"]), mean_std(cells["seconds"], 1), mean_std(cells["time_ratio"], 3), reference])
        parts.append(
            f"**{_label(method)}**\n\n"
            + markdown_table(["epochs", "utility", "test MAE", "forgetting", "F", "seconds", "time / retrain", "thesis (U / MAE / Fg / F)"], rows)
        )
    return "\n\n".join(parts)


def _groups_section(result: StudyResult) -> str:
    runs = result.runs
    methods = [ORIGINAL] + list(result.best_epochs)
    rows = []
    for group in sorted(_cells(runs, "groups")["group"].unique()):
        low, high = FORGET_GROUPS[int(group)]
        for metric in ("utility", "forgetting", "F"):
            row = [f"{group} [{low}-{high}]", metric]
            for method in methods:
                row.append(mean_std(_cells(runs, "groups", method=method, group=group)[metric]))
            published = thesis.GROUPS.get(int(group), {}).get(metric)
            row.append(" / ".join(f"{v:.2f}" for v in published) if published else "-")
            rows.append(row)
    header = ["group", "metric"] + [_label(m) for m in methods] + ["O / FT / RND (thesis)"]
    best = ", ".join(f"{_label(m)} {e} epochs" for m, e in result.best_epochs.items())
    return f"Methods at their best epochs ({best}).\n\n" + markdown_table(header, rows)


def _timing_section(result: StudyResult) -> str:
    runs = result.runs
    rows = []
    for method in [RETRAINED] + list(result.best_epochs):
        cells = runs[runs["method"] == method]
        for epochs in sorted(cells["epochs"].dropna().unique()) if method != RETRAINED else [None]:
            subset = cells if epochs is None else cells[cells["epochs"] == epochs]
            rows.append([_label(method) + ("" if epochs is None else f" {int(epochs)} ep"), len(subset),
                         mean_std(subset["seconds"], 2), mean_std(subset["time_ratio"], 3)])
    return markdown_table(["model", "cells", "seconds (whole ensemble)", "time / retraining"], rows) + (
        f"\n\nThis invocation took {result.seconds / 60:.1f} min for this scope (cached models and cells are loaded, not "
        "recomputed; the per-cell seconds above were measured when each cell was computed)."
    )


def _findings(result: StudyResult) -> str:
    """Plain answers to the questions the issue asks, computed from the numbers above."""
    runs, best = result.runs, result.best_epochs
    sweep = result.config["sweep_group"]
    o = _cells(runs, "epochs", method=ORIGINAL)
    lines = [f"- M_O's utility on group {sweep}: {mean_std(o['utility'])} ({'above' if o['utility'].mean() > 1 else 'not above'} 1; thesis 1.28)."]
    if "finetune" in best:
        ft = _cells(runs, "epochs", method="finetune", epochs=best["finetune"])
        lines.append(
            f"- FT ({best['finetune']} epochs) forgetting {mean_std(ft['forgetting'])} vs O {mean_std(o['forgetting'])}: "
            f"FT {'forgets more' if ft['forgetting'].mean() > o['forgetting'].mean() else 'does not forget more'} than O; "
            f"utility {mean_std(ft['utility'])} vs O {mean_std(o['utility'])}."
        )
    if "random_labels" in best:
        rnd = _cells(runs, "epochs", method="random_labels")
        worst = rnd.groupby("epochs")["utility"].mean()
        lines.append(
            f"- RND utility by epochs: {', '.join(f'{int(e)}: {u:.2f}' for e, u in worst.items())} "
            f"(O {o['utility'].mean():.2f}); it {'loses' if worst.min() < o['utility'].mean() - 0.05 else 'keeps'} utility."
        )
    groups = _cells(runs, "groups")
    if len(groups):
        method = "finetune" if "finetune" in best else ORIGINAL
        by_group = groups[groups["method"] == method].groupby("group")["forgetting"].mean()
        hardest = int(by_group.idxmin())
        lines.append(
            f"- Forgetting of {_label(method)} by group: {', '.join(f'{int(g)}: {v:.2f}' for g, v in by_group.items())}; "
            f"the hardest to forget is group {hardest} [{FORGET_GROUPS[hardest][0]}-{FORGET_GROUPS[hardest][1]}]"
            f"{' (the oldest, as in the thesis)' if hardest == 4 else ' (the thesis found the oldest group hardest)'}."
        )
    alpha = result.alpha
    spread = alpha.groupby(["alpha", "method"])["forgetting"].mean().unstack()
    if len(spread.columns) > 1:
        gaps = (spread.max(axis=1) - spread.min(axis=1)).round(3)
        lines.append(
            f"- Spread between methods' Forgetting by alpha: {', '.join(f'{a:g}: {g:.2f}' for a, g in gaps.items())}; "
            f"alpha=15 gives {gaps.get(15.0, float('nan')):.2f} (largest at alpha={gaps.idxmax():g})."
        )
    return "\n".join(lines)


VERDICT_COLUMNS = [
    ("model", "model"), ("epochs", "epochs"), ("forgetting", "Fg"), ("utility", "U"),
    ("mia_logistic_acc", "MIA-LR acc"), ("mia_logistic_acc_retrained", "MIA-LR acc (R)"),
    ("mia_svc_acc", "MIA-SVC acc"), ("mia_svc_acc_retrained", "MIA-SVC acc (R)"),
    ("lira_auc", "LiRA AUC"), ("lira_auc_retrained", "LiRA AUC (R)"), ("wasserstein", "W1 to R"),
    ("mean_prediction_difference", "|pred - R|"), ("relearn_epochs", "relearn ep"), ("relearn_epochs_retrained", "relearn ep (R)"),
    ("forget_score_prediction", "NeurIPS forget score"), ("forget_score_neg_abs_error", "score (-|err|)"),
    ("final_score_prediction", "final score"), ("seconds", "seconds"),
]


def _format(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _verdicts_section(result: StudyResult) -> str:
    rows = result.verdicts
    columns = [(key, title) for key, title in VERDICT_COLUMNS if any(key in row for row in rows)]
    table = markdown_table([title for _, title in columns], [[_format(row.get(key)) for key, _ in columns] for row in rows])
    parts = [
        f"Group {result.config['sweep_group']}, seed 0, single networks, each against the retrained reference R "
        "(seed 0). Members: the forget set; non-members: test images of the same ages. MIA accuracies should "
        "match R's; LiRA AUC 0.5 is chance; the NeurIPS score compares K unlearning runs (one original, K seeds) "
        "with K retrained models; 'retrained (another seed)' is the perfect-forget sanity row.\n\n" + table,
    ]
    if result.interclass_confusion:
        swapped = result.interclass_confusion[0].get("swapped_per_group", 100)
        parts.append(f"**Interclass confusion** (labels of {swapped} train images aged 20-28 and {swapped} aged 53-60 swapped, "
                     "then forgotten; 0 = predicts the true age, 1 = the swapped label)\n\n"
                     + markdown_table(["model", "confusion"], [[r["model"], _format(r["confusion"])] for r in result.interclass_confusion]))
    if result.feature_injection:
        parts.append("**Feature injection** (a linear head with one extra feature equal to the standardised label on "
                     "forget samples, 0 elsewhere; its weight should return to R's)\n\n"
                     + markdown_table(["model", "injected weight", "relative to O"],
                                      [[r["model"], _format(r["injected_weight"]), _format(r["relative_to_original"])] for r in result.feature_injection]))
    return "\n\n".join(parts)


def _plot_alpha(results: list[StudyResult], path: Path) -> None:
    figure, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for axis, result in zip(axes[0], results):
        means = result.alpha.groupby(["method", "alpha"])["forgetting"].agg(["mean", "std"]).reset_index()
        for method, table in means.groupby("method"):
            axis.plot(table["alpha"], table["mean"], marker="o", color=COLOURS.get(method), label=f"{_label(method)} (ours)")
            axis.fill_between(table["alpha"], table["mean"] - table["std"].fillna(0), table["mean"] + table["std"].fillna(0), color=COLOURS.get(method), alpha=0.15)
        alphas = sorted(thesis.ALPHA)
        for index, method in enumerate(thesis.METHOD_ORDER):
            axis.plot(alphas, [thesis.ALPHA[a][index] for a in alphas], linestyle="--", color=COLOURS[method], alpha=0.6, label=f"{_label(method)} (thesis)")
        axis.set(title=f"Forgetting vs alpha ({result.scope} scope, group {result.config['sweep_group']})", xlabel="alpha", ylabel="Forgetting", ylim=(0, 1.02))
        axis.legend(fontsize=7)
    figure.tight_layout()
    atomic_write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def _plot_per_sample(result: StudyResult, path: Path) -> None:
    table = result.per_sample.sort_values("age").reset_index(drop=True)
    methods = [c for c in table.columns if c not in ("id", "age")]
    figure, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True, sharey=True)
    pairs = [(ORIGINAL, RETRAINED), tuple(m for m in methods if m not in (ORIGINAL, RETRAINED))]
    for axis, pair in zip(axes, pairs):
        if RETRAINED not in pair:  # the retrained reference, faint, under the unlearned models
            axis.plot(table.index, table[RETRAINED], linewidth=0.8, color=COLOURS[RETRAINED], alpha=0.35, label="R (reference)")
        for method in pair:
            axis.plot(table.index, table[method], marker=".", linewidth=0.8, color=COLOURS.get(method), label=_label(method))
        axis.set(ylabel="absolute error (years)")
        axis.legend(fontsize=8)
    axes[1].set(xlabel="100 fixed random test images, sorted by age")
    axes[0].set(title=f"Per-sample absolute error, seed {result.config['seeds'][0]} ({result.scope} scope; thesis Figs. 11-12)")
    figure.tight_layout()
    atomic_write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def _plot_epochs(results: list[StudyResult], path: Path) -> None:
    figure, axes = plt.subplots(2, len(results), figsize=(5.5 * len(results), 7), squeeze=False)
    for column, result in enumerate(results):
        runs = _cells(result.runs, "epochs")
        for row, metric in enumerate(("utility", "forgetting")):
            axis = axes[row][column]
            for method in result.best_epochs:
                stats = runs[runs["method"] == method].groupby("epochs")[metric].agg(["mean", "std"])
                axis.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, color=COLOURS.get(method), label=f"{_label(method)} (ours)")
                published = thesis.EPOCH_SWEEP.get(method, {}).get(metric)
                if published:
                    axis.plot(thesis.EPOCHS, published, linestyle="--", color=COLOURS.get(method), alpha=0.6, label=f"{_label(method)} (thesis)")
            original = runs[runs["method"] == ORIGINAL][metric].mean()
            axis.axhline(original, color=COLOURS[ORIGINAL], linestyle=":", label="O (ours)")
            axis.set_xscale("log", base=2)
            axis.set(xticks=list(thesis.EPOCHS), xticklabels=[str(e) for e in thesis.EPOCHS], xlabel="epochs", ylabel=metric,
                     title=f"{metric.capitalize()} vs epochs ({result.scope} scope)")
            axis.minorticks_off()
            axis.legend(fontsize=7)
    figure.tight_layout()
    atomic_write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def _comparison(results: list[StudyResult]) -> str:
    rows = []
    for result in results:
        runs = result.runs
        o = _cells(runs, "epochs", method=ORIGINAL)
        r = _cells(runs, "epochs", method=RETRAINED)
        row = [result.scope, mean_std(o["test_mae"]), mean_std(r["test_mae"]), mean_std(o["forgetting"])]
        for method, epochs in result.best_epochs.items():
            cells = _cells(runs, "epochs", method=method, epochs=epochs)
            row += [f"{mean_std(cells['forgetting'])} ({epochs} ep)", mean_std(cells["utility"])]
        row.append(f"{result.seconds / 60:.1f}")
        rows.append(row)
    header = ["scope", "M_O test MAE", "M_R^0 test MAE", "Fg(O)"]
    for method in results[0].best_epochs:
        header += [f"Fg({_label(method)})", f"U({_label(method)})"]
    return markdown_table(header + ["minutes (this run)"], rows) + (
        "\n\nMinutes are this invocation's: cached models and cells are loaded, not recomputed; the fresh "
        "timings of each scope's study are in BENCHMARKS.md."
    )


def write_report(results: list[StudyResult], out: str | Path, meta: dict) -> Path:
    """Write the report folder; returns the path of ``index.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.concat([r.runs for r in results], ignore_index=True)
    atomic_write_text(out / "runs.csv", runs.to_csv(index=False, float_format="%.5f"))
    atomic_write_text(out / "alpha.csv", pd.concat([r.alpha for r in results]).to_csv(index=False, float_format="%.5f"))
    verdicts = [dict(row, scope=r.scope) for r in results for row in r.verdicts]
    if verdicts:
        atomic_write_text(out / "verdicts.csv", pd.DataFrame(verdicts).to_csv(index=False, float_format="%.5f"))
    predictions = pd.concat([r.predictions for r in results], ignore_index=True)
    atomic_write_with(out / "predictions.csv.gz", lambda tmp: predictions.to_csv(tmp, index=False, compression="gzip"))
    for result in results:
        atomic_write_text(out / f"per_sample_errors_{result.scope}.csv", result.per_sample.to_csv(index=False, float_format="%.4f"))
        _plot_per_sample(result, out / f"per_sample_errors_{result.scope}.png")
    _plot_alpha(results, out / "forgetting_vs_alpha.png")
    _plot_epochs(results, out / "epochs.png")
    atomic_write_json(out / "summary.json", {
        **meta,
        "scopes": {r.scope: {"best_epochs": r.best_epochs, "minutes": round(r.seconds / 60, 2), "models": r.model_summary, "config": r.config,
                             "interclass_confusion": r.interclass_confusion, "feature_injection": r.feature_injection} for r in results},
    })

    sections = [
        "# olvido study report",
        f"Command: `{meta.get('command', '')}`  \nDate: {meta.get('date', '')}  \nData: {meta.get('data', '')}, manifest `{meta.get('manifest', '')}`  \n"
        f"Machine: {meta.get('machine', '')}",
        "All numbers are means ± standard deviations over seeds (each seed trains its own ensembles and "
        "unlearning runs). Forgetting uses alpha = 15 unless a table varies alpha. The thesis's Forgetting "
        "values carry its all-pairs averaging bug (THESIS.md section 5): compare their trends, not their digits.",
        "## Scopes side by side\n\n" + _comparison(results),
    ]
    for result in results:
        sections += [
            f"## Scope `{result.scope}`",
            "### What the numbers say\n\n" + _findings(result),
            "### Models\n\n" + _models_section(result),
            "### Experiment 1 (Table 3): Forgetting vs alpha\n\n" + _alpha_section(result),
            "### Experiment 2 (Tables 4-7): epochs\n\n" + _epochs_section(result),
            "### Experiment 3 (Table 8): forget groups\n\n" + _groups_section(result),
            "### Wall time\n\n" + _timing_section(result),
            *(["### Verdicts: attacks, NeurIPS score, distances, sanity tests\n\n" + _verdicts_section(result)] if result.verdicts else []),
            f"![per-sample errors](per_sample_errors_{result.scope}.png)",
        ]
    sections += [
        "## Plots\n\n![Forgetting vs alpha](forgetting_vs_alpha.png)\n\n![Utility and Forgetting vs epochs](epochs.png)",
        "## Files\n\n`runs.csv` (one row per cell), `alpha.csv`, `per_sample_errors_<scope>.csv`, "
        "`predictions.csv.gz` (every test and forget-set prediction, in years to 2 decimals: scope, method, group, epochs, seed, set, id, age, prediction), "
        "`verdicts.csv` (every verdict column), `summary.json`.",
    ]
    index = out / "index.md"
    atomic_write_text(index, "\n\n".join(sections) + "\n")
    return index
