"""The study report: ``index.md`` with a leaderboard of methods and the thesis's tables (its numbers beside
ours), CSVs and PNG plots. Labels, knobs and colours come from the method registry: nothing here names a
method except the thesis's own published numbers (``thesis_numbers``).

    write_report([head_result, last_result], Path("results"), meta)

Files: ``index.md``; ``runs.csv`` (every cell: metrics, wall time, ratio to retraining); ``leaderboard.csv``;
``alpha.csv``; ``default_vs_tuned.csv``; ``against_retraining.csv`` (each setting on the sweep group against
``RetrainingBar``); ``per_sample_errors_<scope>.csv`` (100 fixed test images); ``predictions.csv.gz`` (every
test and forget-set prediction); ``summary.json``; ``forgetting_vs_alpha.png``, ``sweep_<scope>.png``,
``f_vs_time.png``, ``per_sample_errors_<scope>.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from olvido.data.protocol import FORGET_GROUPS  # noqa: E402
from olvido.experiments.study import (  # noqa: E402
    ORIGINAL,
    RETRAINED,
    RETRAINED_OTHER,
    StudyResult,
    canonical_value,
    method_label,
    unique_cells,
)
from olvido.experiments.verdicts import K_ORIGINALS, ONE_ORIGINAL, PROTOCOLS  # noqa: E402
from olvido.methods import THESIS_METHODS, get_method, list_methods  # noqa: E402
from olvido.report import thesis_numbers as thesis  # noqa: E402
from olvido.storage import atomic_write_json, atomic_write_text, atomic_write_with  # noqa: E402

_PALETTE = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)


def colour(method: str) -> tuple:
    """A fixed colour per method: references first, then registry order."""
    order = [ORIGINAL, RETRAINED, RETRAINED_OTHER] + list_methods()
    return _PALETTE[order.index(method) % len(_PALETTE)] if method in order else (0.5, 0.5, 0.5)


def mean_std(values: pd.Series, digits: int = 2) -> str:
    values = pd.Series(values).dropna()
    if len(values) == 0:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, dict):  # a whole configuration in place of a knob value: a tuned one (olvido tune)
        return _tuned_setting(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def records_table(rows: list[dict]) -> str:
    """A Markdown table of dict rows (columns from the first row), floats to 3 decimals."""
    if not rows:
        return "(no rows)"
    header = list(rows[0])
    return markdown_table(header, [[format_cell(row.get(key)) for key in header] for row in rows])


def _cells(runs: pd.DataFrame, experiment: str | None = None, **where) -> pd.DataFrame:
    table = runs if experiment is None else runs[runs["experiment"] == experiment]
    for column, value in where.items():
        table = table[table[column].isna()] if value is None else table[table[column] == value]
    return table


def _knob(method: str, value) -> str:
    if method in (ORIGINAL, RETRAINED, RETRAINED_OTHER) or value is None or pd.isna(value):
        return "-"
    value = float(value)
    return f"{get_method(method).knob.title} {int(value) if value.is_integer() else f'{value:g}'}"


def _value(value):
    return canonical_value(value)


# -- leaderboard ---------------------------------------------------------------------------------------------
def format_params(values: dict, joiner: str = " ") -> str:
    """Config values as ``name<joiner>value, ...`` (sorted; floats to 3 significant digits: learning rates too)."""
    return ", ".join(
        f"{k}{joiner}{v:.3g}" if isinstance(v, float) else f"{k}{joiner}{v}" for k, v in sorted(values.items())
    )


def _tuned_setting(values: dict) -> str:
    return "tuned: " + format_params(values)


def describe_setup(setup: dict | None) -> str:
    """A tuning setup (``tuned.yaml``'s ``setup``) in words, e.g. "seeds 10000, 10001, 10002, 50% of group 0's
    training originals"."""
    if not setup:
        return "tuning setup not recorded"
    text = (
        f"seeds {', '.join(map(str, setup['seeds']))}, {setup['forget_fraction']:.0%} of group {setup['group']}'s "
        "training originals"
    )
    budget = setup.get("max_time_ratio")
    return text if budget is None else f"{text}, within {budget} of retraining time"


def _method_cells(result: StudyResult, method: str, tuned: bool) -> pd.DataFrame:
    """A method's cells in the methods experiment: at its tuned configuration or at its best knob value."""
    runs = result.tuned_runs if tuned else _cells(result.runs, "methods")
    return runs[runs["method"] == method] if len(runs) else runs


def leaderboard(result: StudyResult) -> pd.DataFrame:
    """One row per method and per reference: means over every group and seed of the methods experiment,
    sorted by mean F (best first). A method with a tuned configuration (``olvido tune``) is ranked at it;
    the others at their best knob value."""
    rows = []
    for method in [ORIGINAL, RETRAINED_OTHER] + list(result.best):
        tuned = method in result.tuned
        cells = _method_cells(result, method, tuned)
        if not len(cells):
            continue
        rows.append(
            {
                "scope": result.scope,
                "method": method,
                "label": method_label(method),
                "setting": _tuned_setting(result.tuned[method]) if tuned else _knob(method, result.best.get(method)),
                "F": cells["F"].mean(),
                "F_std": cells["F"].std(ddof=1),
                "utility": cells["utility"].mean(),
                "forgetting": cells["forgetting"].mean(),
                "wasserstein": cells["wasserstein"].mean(),
                "prediction_gap": cells["prediction_gap"].mean(),
                "forget_mae": cells["forget_mae"].mean(),
                "test_mae": cells["test_mae"].mean(),
                "seconds": cells["seconds"].mean(),
                "time_ratio": cells["time_ratio"].mean(),
                "cells": len(cells),
                "reference": method in (ORIGINAL, RETRAINED_OTHER),
                "tuned": tuned,
            }
        )
    return pd.DataFrame(rows).sort_values("F", ascending=False).reset_index(drop=True)


def _same_setting(a, b) -> bool:
    """Two knob values or whole configurations alike (a cache's JSON and a YAML file write them differently)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        )
    return canonical_value(a) == canonical_value(b)


def calibrated_score(result: StudyResult, method: str, value, protocol: str) -> float | None:
    """The calibrated NeurIPS forget score (prediction scalar) of ``method`` at ``value`` under ``protocol``
    on the sweep group, or None where the verdicts did not score it."""
    for row in result.neurips:
        if (
            row["model"] == method
            and row["protocol"] == protocol
            and row["scalar"] == "prediction"
            and _same_setting(row["value"], value)
        ):
            return row["calibrated"]
    return None


def _settings(result: StudyResult, method: str) -> list[tuple[str, bool, object]]:
    """A method's settings in the study as (variant, tuned, value): its default (the best knob value) and,
    where tuned, its tuned configuration."""
    settings = [("default", False, result.best[method])]
    if method in result.tuned:
        settings.append(("tuned", True, result.tuned[method]))
    return settings


def _setting_columns(result: StudyResult, method: str, variant: str, tuned: bool, value) -> dict:
    return {
        "scope": result.scope,
        "method": method,
        "label": method_label(method),
        "variant": variant,
        "setting": _tuned_setting(value) if tuned else _knob(method, value),
    }


def default_vs_tuned(result: StudyResult) -> pd.DataFrame:
    """Each tuned method at its default (best knob value) and at its tuned configuration: means over every
    group and seed of the methods experiment, and the calibrated forget score of the sweep group's verdicts
    under each protocol (None where not scored)."""
    rows = []
    for method in result.tuned:
        for variant, tuned, value in _settings(result, method):
            cells = _method_cells(result, method, tuned)
            rows.append(
                {
                    **_setting_columns(result, method, variant, tuned, value),
                    "tuned on": describe_setup(result.tuned_setups.get(method)) if tuned else "",
                    **{k: cells[k].mean() for k in ("utility", "forgetting", "F", "wasserstein", "time_ratio")},
                    **{
                        f"calibrated ({protocol})": calibrated_score(result, method, value, protocol)
                        for protocol in PROTOCOLS
                    },
                    "cells": len(cells),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RetrainingBar:
    """When an unlearning run counts as retraining's equal (issue 13): Forgetting at least that of a second
    retrained model scored against R, Utility >= ``min_utility``, a calibrated NeurIPS forget score >=
    ``min_calibrated`` (its raw score that share of the retrained-versus-retrained one) and at most
    ``max_time_ratio`` of retraining time."""

    min_utility: float = 1.0
    min_calibrated: float = 0.8
    max_time_ratio: float = 0.3

    def shortfalls(
        self, forgetting: float, utility: float, calibrated: float | None, time_ratio: float, sanity_forgetting: float
    ) -> list[str]:
        """How far each missed criterion is from the bar (signed gaps, e.g. ``U -0.020``); a calibrated score of
        None (not measured) is a shortfall of its own: the bar cannot be met unscored. Empty: meets the bar."""
        misses = []
        if forgetting < sanity_forgetting:
            misses.append(f"Fg {forgetting - sanity_forgetting:+.3f}")
        if utility < self.min_utility:
            misses.append(f"U {utility - self.min_utility:+.3f}")
        if calibrated is None or np.isnan(calibrated):
            misses.append("score not measured")
        elif calibrated < self.min_calibrated:
            misses.append(f"score {calibrated - self.min_calibrated:+.2f}")
        if time_ratio > self.max_time_ratio:
            misses.append(f"time {time_ratio - self.max_time_ratio:+.2f}")
        return misses

    def judge(
        self, forgetting: float, utility: float, calibrated: float | None, time_ratio: float, sanity_forgetting: float
    ) -> str:
        """``shortfalls`` in words: "meets" or "misses: ..."."""
        return _in_words(self.shortfalls(forgetting, utility, calibrated, time_ratio, sanity_forgetting))


def _in_words(misses: list[str]) -> str:
    return "meets" if not misses else "misses: " + ", ".join(misses)


RETRAINING_BAR = RetrainingBar()


def _best_calibrated(result: StudyResult, method: str, value) -> tuple[float | None, str | None]:
    """The calibrated score of a setting under the first protocol that scored it, K originals first (the
    stricter one: the spread of K originals counts), and that protocol."""
    for protocol in (K_ORIGINALS, ONE_ORIGINAL):
        score = calibrated_score(result, method, value, protocol)
        if score is not None:
            return score, protocol
    return None, None


def against_retraining(result: StudyResult, bar: RetrainingBar = RETRAINING_BAR) -> pd.DataFrame:
    """Every method on the sweep group, at its default setting and, where tuned, at its tuned configuration,
    judged against ``bar``: means over the seeds of the methods experiment's cells on that group (Forgetting,
    Utility, time / retraining: each cell's run over its own seed's retraining), the calibrated score of the
    sweep group's verdicts, and what it misses by how much. Sorted: fewest shortfalls first, then Forgetting."""
    group = result.config["sweep_group"]
    sanity = _cells(result.runs, "methods", method=RETRAINED_OTHER, group=group)
    if not len(sanity):
        return pd.DataFrame()
    sanity_forgetting = sanity["forgetting"].mean()
    rows = []
    for method in result.best:
        for variant, tuned, value in _settings(result, method):
            cells = _method_cells(result, method, tuned)
            cells = cells[cells["group"] == group]
            if not len(cells):
                continue
            calibrated, protocol = _best_calibrated(result, method, value)
            measured = {k: cells[k].mean() for k in ("forgetting", "utility", "time_ratio")}
            misses = bar.shortfalls(
                measured["forgetting"], measured["utility"], calibrated, measured["time_ratio"], sanity_forgetting
            )
            rows.append(
                {
                    **_setting_columns(result, method, variant, tuned, value),
                    **measured,
                    "calibrated": calibrated,
                    "protocol": protocol,
                    "sanity_forgetting": sanity_forgetting,
                    "shortfalls": len(misses),
                    "against the bar": _in_words(misses),
                }
            )
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    return table.sort_values(["shortfalls", "forgetting"], ascending=[True, False], kind="stable").reset_index(
        drop=True
    )


def _bar_section(result: StudyResult, table: pd.DataFrame, bar: RetrainingBar = RETRAINING_BAR) -> str:
    """``table``: ``against_retraining(result, bar)``."""
    group = result.config["sweep_group"]
    met = table[table["shortfalls"] == 0]
    rows = [
        [
            r["label"],
            r["variant"],
            r["setting"],
            f"{r['forgetting']:.3f}",
            f"{r['utility']:.3f}",
            "-" if r["calibrated"] is None or pd.isna(r["calibrated"]) else f"{r['calibrated']:.2f} ({r['protocol']})",
            f"{r['time_ratio']:.3f}",
            f"**{r['against the bar']}**" if r["shortfalls"] == 0 else r["against the bar"],
        ]
        for r in table.to_dict("records")
    ]
    verdict = (
        f"Meeting it: {', '.join(f'{r.label} ({r.variant})' for r in met.itertuples())}."
        if len(met)
        else "No setting meets it; 'misses' says how far each got."
    )
    return (
        f"The bar (issue 13) on group {group}, means over its seeds in the methods experiment: Forgetting at least "
        f"a second retrained model's ({table['sanity_forgetting'].iloc[0]:.3f}), Utility >= {bar.min_utility}, a "
        f"calibrated forget score >= {bar.min_calibrated} (from the verdicts: K originals where scored, else one "
        f"original; '-' and 'score not measured' where this scope's verdicts give the setting no score) and at "
        f"most {bar.max_time_ratio} of retraining time. {verdict}\n\n"
        + markdown_table(
            ["method", "variant", "setting", "Fg", "U", "calibrated", "time / retrain", "against the bar"], rows
        )
    )


def _tuned_section(result: StudyResult) -> str:
    table = default_vs_tuned(result)
    scores = [f"calibrated ({protocol})" for protocol in PROTOCOLS]
    rows = [
        [r["label"], r["variant"], r["setting"], r["tuned on"] or "-"]
        + [f"{r[k]:.3f}" for k in ("utility", "forgetting", "F", "wasserstein")]
        + [format_cell(r[k]) for k in scores]
        + [f"{r['time_ratio']:.3f}"]
        for r in table.to_dict("records")
    ]
    return (
        "Each tuned method (`olvido tune`, docs/tuning.md: tuned on seeds >= 10000 and on an age group's "
        "training images, under the setup in its 'tuned on' column, never on what is reported here) at its default "
        "setting (the best knob value of the sweep) and at its tuned configuration, on every group and seed of "
        "the methods experiment; the leaderboard ranks it at the tuned one. Calibrated: the NeurIPS forget score "
        f"over F_rr on group {result.config['sweep_group']} (the verdicts' K models; '-' where not scored: "
        "deterministic methods from one original, methods without a score in this scope).\n\n"
        + markdown_table(
            ["method", "variant", "setting", "tuned on", "U", "Fg", "F", "W1 to R", *scores, "time / retrain"], rows
        )
    )


def _leaderboard_section(result: StudyResult) -> str:
    table = leaderboard(result)
    rows = [
        [
            f"**{r['label']}**" if not r["reference"] else f"*{r['label']}* (reference)",
            r["setting"],
            f"{r['F']:.3f} ± {r['F_std']:.3f}",
            f"{r['utility']:.2f}",
            f"{r['forgetting']:.3f}",
            f"{r['wasserstein']:.2f}",
            f"{r['prediction_gap']:.2f}",
            f"{r['forget_mae']:.2f}",
            f"{r['test_mae']:.2f}",
            f"{r['seconds']:.1f}",
            f"{r['time_ratio']:.3f}",
        ]
        for r in table.to_dict("records")
    ]
    groups = sorted(_cells(result.runs, "methods")["group"].unique())
    intro = (
        f"Every method at its best knob value (highest mean F on group {result.config['sweep_group']}) or, where "
        "its setting says tuned, at its tuned configuration (`olvido tune`), on "
        f"{len(groups)} forget groups x {len(result.config['seeds'])} seeds; means over all of them (F also ± std). "
        "O is the original; *R (another seed)* is a second retrained model scored against R: what a perfect "
        "method reaches (its Forgetting is not 1). W1 and |pred - R| compare forget-set predictions with R's "
        "(years). Seconds are wall time per model (ensemble) and time / retrain its ratio to training R."
    )
    board = markdown_table(
        [
            "method",
            "setting",
            "F",
            "U",
            "Fg",
            "W1 to R",
            "|pred - R|",
            "forget MAE",
            "test MAE",
            "seconds",
            "time / retrain",
        ],
        rows,
    )
    by_group = []
    for method in [ORIGINAL, RETRAINED_OTHER] + list(result.best):
        cells = _method_cells(result, method, method in result.tuned)
        by_group.append([method_label(method)] + [mean_std(cells[cells["group"] == g]["F"]) for g in groups])
    header = ["F by group"] + [f"{g} [{FORGET_GROUPS[int(g)][0]}-{FORGET_GROUPS[int(g)][1]}]" for g in groups]
    return intro + "\n\n" + board + "\n\n" + markdown_table(header, by_group) + "\n\n![F against time](f_vs_time.png)"


# -- the thesis's tables -------------------------------------------------------------------------------------
def _models_section(result: StudyResult) -> str:
    summary = result.model_summary
    originals = summary["original_test_mae"]
    test_mae = pd.Series([o["test_mae"] for o in originals])
    group_names = [f"{low}-{high}" for low, high in FORGET_GROUPS]
    rows = [["M_O (all test)", mean_std(test_mae)]]
    for name in group_names:
        rows.append(
            [f"M_O on test aged {name}", mean_std(pd.Series([o["test_mae_by_group"][name] for o in originals]))]
        )
    for group in sorted(result.runs["group"].unique()):
        retrained = _cells(result.runs, "methods", method=RETRAINED, group=group)
        if len(retrained):
            rows.append([f"M_R^{group} (forget {group_names[group]}), all test", mean_std(retrained["test_mae"])])
    pretrain = summary.get("pretrain") or {}
    architecture = summary["architecture"]
    text = [
        f"Backbone `{architecture['backbone']}` ({architecture['weights']}), scope `{result.scope}`, ensembles of "
        f"{architecture['ensemble']}{', test-time mirroring' if architecture.get('mirror') else ''}, "
        f"fit recipe `{summary['fit']}`.",
    ]
    if pretrain:
        text.append(
            f"Face pretraining on {pretrain['pool']} left-out images: validation MAE {pretrain['val_mae']:.2f} "
            f"(ages 20-60: {pretrain['val_mae_20_60']:.2f}), {pretrain['seconds'] / 60:.1f} min when it ran."
        )
    text.append(
        f"Thesis: M_O {thesis.ORIGINAL['test_mae']}, M_R^0 {thesis.RETRAINED_TEST_MAE} "
        "(ResNet50 VGGFace2, 224 px, end to end)."
    )
    return "\n\n".join(text) + "\n\n" + markdown_table(["model", "test MAE (years, mean ± std over seeds)"], rows)


def _alpha_section(result: StudyResult) -> str:
    alpha = result.alpha
    methods = [ORIGINAL, RETRAINED_OTHER] + list(result.best)
    header = ["alpha"] + [method_label(m) for m in methods] + ["O / FT / RND (thesis)"]
    rows = []
    for value in sorted(alpha["alpha"].unique()):
        row = [f"{value:g}"]
        for method in methods:
            row.append(mean_std(alpha[(alpha["alpha"] == value) & (alpha["method"] == method)]["forgetting"]))
        published = thesis.ALPHA.get(int(value))
        row.append(" / ".join(f"{v:.2f}" for v in published) if published else "-")
        rows.append(row)
    return f"Group {result.config['sweep_group']}, methods at their best values.\n\n" + markdown_table(header, rows)


def _sweep_section(result: StudyResult) -> str:
    runs = _cells(result.runs, "sweep")
    o, r = runs[runs["method"] == ORIGINAL], runs[runs["method"] == RETRAINED_OTHER]
    parts = [
        markdown_table(
            ["model", "utility", "test MAE", "forgetting", "F", "thesis (U / MAE / Fg / F)"],
            [
                [
                    "M_O",
                    mean_std(o["utility"]),
                    mean_std(o["test_mae"]),
                    mean_std(o["forgetting"]),
                    mean_std(o["F"]),
                    " / ".join(str(thesis.ORIGINAL[k]) for k in ("utility", "test_mae", "forgetting", "F")),
                ],
                [
                    "R (another seed)",
                    mean_std(r["utility"]),
                    mean_std(r["test_mae"]),
                    mean_std(r["forgetting"]),
                    mean_std(r["F"]),
                    "-",
                ],
            ],
        )
    ]
    for method in result.best:
        spec = get_method(method)
        published = thesis.EPOCH_SWEEP.get(method, {}) if spec.knob.name == "epochs" else {}
        rows = []
        for value in sorted(runs[runs["method"] == method]["value"].unique()):
            cells = runs[(runs["method"] == method) & (runs["value"] == value)]
            index = thesis.EPOCHS.index(int(value)) if published and int(value) in thesis.EPOCHS else None
            reference = (
                " / ".join(f"{published[k][index]}" for k in ("utility", "test_mae", "forgetting", "F"))
                if index is not None
                else "-"
            )
            best = " (best)" if _value(value) == result.best[method] else ""
            rows.append(
                [
                    f"{_value(value)}{best}",
                    mean_std(cells["utility"]),
                    mean_std(cells["test_mae"]),
                    mean_std(cells["forgetting"]),
                    mean_std(cells["F"]),
                    mean_std(cells["wasserstein"]),
                    mean_std(cells["seconds"], 1),
                    mean_std(cells["time_ratio"], 3),
                    reference,
                ]
            )
        parts.append(
            f"**{spec.label}** ({spec.summary}; {spec.reference})\n\n"
            + markdown_table(
                [
                    spec.knob.title,
                    "utility",
                    "test MAE",
                    "forgetting",
                    "F",
                    "W1 to R",
                    "seconds",
                    "time / retrain",
                    "thesis (U / MAE / Fg / F)",
                ],
                rows,
            )
        )
    return "\n\n".join(parts) + f"\n\n![knob sweeps](sweep_{result.scope}.png)"


def _groups_section(result: StudyResult) -> str:
    runs = _cells(result.runs, "methods")
    methods = [ORIGINAL] + [m for m in THESIS_METHODS if m in result.best]
    rows = []
    for group in sorted(runs["group"].unique()):
        low, high = FORGET_GROUPS[int(group)]
        for metric in ("utility", "forgetting", "F"):
            row = [f"{group} [{low}-{high}]", metric]
            for method in methods + [RETRAINED_OTHER]:
                row.append(mean_std(runs[(runs["method"] == method) & (runs["group"] == group)][metric]))
            published = thesis.GROUPS.get(int(group), {}).get(metric)
            row.append(" / ".join(f"{v:.2f}" for v in published) if published else "-")
            rows.append(row)
    header = ["group", "metric"] + [method_label(m) for m in methods + [RETRAINED_OTHER]] + ["O / FT / RND (thesis)"]
    best = ", ".join(_knob(m, result.best[m]) + f" ({method_label(m)})" for m in methods if m in result.best)
    return (
        f"The thesis's methods at their best values ({best or 'none'}); every method is in the leaderboard above.\n\n"
        + markdown_table(header, rows)
    )


def _timing_section(result: StudyResult) -> str:
    cells = unique_cells(result.runs)
    rows = []
    for method in [RETRAINED, RETRAINED_OTHER] + list(result.best):
        subset = cells[cells["method"] == method]
        values = [None] if method in (RETRAINED, RETRAINED_OTHER) else sorted(subset["value"].dropna().unique())
        for value in values:
            part = subset if value is None else subset[subset["value"] == value]
            rows.append(
                [
                    method_label(method) + ("" if value is None else f", {_knob(method, value)}"),
                    len(part),
                    mean_std(part["seconds"], 2),
                    mean_std(part["time_ratio"], 3),
                ]
            )
    return markdown_table(["model", "cells", "seconds (whole ensemble)", "time / retraining"], rows) + (
        f"\n\nEach cell counted once (the sweep and the methods experiment share some). This invocation took "
        f"{result.seconds / 60:.1f} min for this scope (cached models and cells are loaded, not recomputed; the "
        "per-cell seconds above were measured when each cell was computed)."
    )


def _findings(result: StudyResult) -> str:
    """Plain statements computed from the numbers above (no method is special-cased)."""
    runs, sweep_group = result.runs, result.config["sweep_group"]
    sweep = _cells(runs, "sweep")
    o = sweep[sweep["method"] == ORIGINAL]
    other = sweep[sweep["method"] == RETRAINED_OTHER]
    lines = [
        f"- M_O's utility on group {sweep_group}: {mean_std(o['utility'])} "
        f"({'above' if o['utility'].mean() > 1 else 'not above'} 1; thesis 1.28); its Forgetting "
        f"{mean_std(o['forgetting'])}, a second retrained model's {mean_std(other['forgetting'])}."
    ]
    board = leaderboard(result)
    methods = board[~board["reference"]]
    if len(methods):
        top = methods.iloc[0]
        lines.append(
            f"- Best mean F over all groups: {top['label']} ({top['setting']}), F {top['F']:.3f}, "
            f"U {top['utility']:.2f}, Fg {top['forgetting']:.3f}, at {top['time_ratio']:.2f} of retraining time."
        )
        reached = sweep[
            (sweep["method"].isin(list(result.best)))
            & sweep.apply(lambda row: row["value"] == result.best.get(row["method"]), axis=1)
        ]
        target = other["forgetting"].mean()
        hits = []
        for method, cells in reached.groupby("method"):
            if cells["forgetting"].mean() >= target and cells["utility"].mean() >= 1.0:
                hits.append(
                    f"{method_label(method)} (Fg {cells['forgetting'].mean():.3f}, U {cells['utility'].mean():.2f}, "
                    f"time {cells['time_ratio'].mean():.2f})"
                )
        lines.append(
            f"- On group {sweep_group}, methods reaching the second retrained model's Forgetting ({target:.3f}) with "
            f"Utility >= 1: {', '.join(hits) if hits else 'none'}."
        )
    groups = _cells(runs, "methods")
    if len(groups) and len(methods):
        wins = []
        for group, cells in groups[~groups["method"].isin([ORIGINAL, RETRAINED, RETRAINED_OTHER])].groupby("group"):
            means = cells.groupby("method")["F"].mean()
            wins.append(f"{int(group)}: {method_label(means.idxmax())} ({means.max():.3f})")
        lines.append(f"- Best method per group (mean F): {'; '.join(wins)}.")
    alpha = result.alpha
    spread = alpha.groupby(["alpha", "method"])["forgetting"].mean().unstack()
    if len(spread.columns) > 1:
        gaps = (spread.max(axis=1) - spread.min(axis=1)).round(3)
        lines.append(
            f"- Spread of Forgetting across models by alpha: {', '.join(f'{a:g}: {g:.2f}' for a, g in gaps.items())}; "
            f"alpha=15 gives {gaps.get(15.0, float('nan')):.2f} (largest at alpha={gaps.idxmax():g})."
        )
    return "\n".join(lines)


VERDICT_COLUMNS = [
    ("model", "model"),
    ("value", "knob value"),
    ("forgetting", "Fg"),
    ("utility", "U"),
    ("mia_logistic_acc", "MIA-LR acc"),
    ("mia_logistic_acc_retrained", "MIA-LR acc (R)"),
    ("mia_svc_acc", "MIA-SVC acc"),
    ("mia_svc_acc_retrained", "MIA-SVC acc (R)"),
    ("lira_auc", "LiRA AUC"),
    ("lira_auc_retrained", "LiRA AUC (R)"),
    ("ulira_auc", "U-LiRA AUC"),
    ("ulira_tpr_at_1pct_fpr", "U-LiRA TPR@1%"),
    ("wasserstein", "W1 to R"),
    ("mean_prediction_difference", "|pred - R|"),
    ("relearn_epochs", "relearn ep"),
    ("relearn_epochs_retrained", "relearn ep (R)"),
    ("neurips_note", "NeurIPS score note"),
]
# No seconds column: a verdict's own unlearning run may have shared the CPU with other executor jobs (or any
# other load); methods are timed in the leaderboard, where each cell's time was measured as it ran alone.


# The CSVs' column order, fixed: rows read back from the cache come with their keys sorted, fresh ones in the
# order they were computed, and a rerun must write the same file.
VERDICT_CSV_COLUMNS = (
    "model", "value", "seconds", "test_mae", "forget_mae", "utility", "forgetting", "F", "mia_logistic_acc",
    "mia_logistic_auc", "mia_logistic_acc_retrained", "mia_logistic_gap", "mia_svc_acc", "mia_svc_auc",
    "mia_svc_acc_retrained", "mia_svc_gap", "lira_auc", "lira_auc_retrained", "lira_tpr_at_1pct_fpr", "ulira_auc",
    "ulira_tpr_at_1pct_fpr", "wasserstein", "mean_prediction_difference", "relearn_epochs",
    "relearn_epochs_retrained", "ain", "evaluation_seconds", "reference_seconds", "total_seconds", "scope", "regime",
    "neurips_note",
)  # fmt: skip
NEURIPS_CSV_COLUMNS = (
    "model", "value", "protocol", "scalar", "k", "raw", "raw_low", "raw_high", "f_rr", "f_rr_low", "f_rr_high",
    "calibrated", "calibrated_low", "calibrated_high", "spread_ratio", "final_score", "scope",
)  # fmt: skip


def in_column_order(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """``rows`` as a table whose columns are ``columns`` (those present), then any others sorted by name."""
    table = pd.DataFrame(rows)
    known = [c for c in columns if c in table.columns]
    return table[known + sorted(c for c in table.columns if c not in known)]


def interval(row: dict, name: str) -> str:
    """``value [low, high]`` of a bootstrapped statistic."""
    return f"{format_cell(row[name])} [{format_cell(row[name + '_low'])}, {format_cell(row[name + '_high'])}]"


def neurips_table(rows: list[dict], scalar: str = "prediction") -> str:
    """The NeurIPS forget score, raw and calibrated (with intervals), per model and protocol."""
    chosen = [r for r in rows if r["scalar"] == scalar]
    return markdown_table(
        ["model", "knob value", "protocol", "K", "raw score", "F_rr", "calibrated", "spread ratio", "final score"],
        [
            [
                r["model"],
                format_cell(r["value"]),
                r["protocol"],
                r["k"],
                interval(r, "raw"),
                interval(r, "f_rr"),
                interval(r, "calibrated"),
                format_cell(r["spread_ratio"]),
                format_cell(r["final_score"]),
            ]
            for r in chosen
        ],
    )


def _neurips_coverage(rows: list[dict], neurips: list[dict]) -> str:
    """A sentence naming the models scored, where the configuration scored only some (``k_methods``)."""
    scored = {r["model"] for r in neurips}
    if all(row["model"] in scored for row in rows):
        return ""
    names = ", ".join(row["model"] for row in rows if row["model"] in scored)
    return (
        f" In this scope only {names} are scored (K trainings cost more here); the other methods' scores are in "
        "the head scope."
    )


def _verdicts_section(result: StudyResult) -> str:
    rows = result.verdicts
    columns = [(key, title) for key, title in VERDICT_COLUMNS if any(key in row for row in rows)]
    table = markdown_table(
        [title for _, title in columns], [[format_cell(row.get(key)) for key, _ in columns] for row in rows]
    )
    parts = [
        f"Group {result.config['sweep_group']}, seed 0, single networks, each against the retrained reference R "
        "(seed 0). Members: the forget set; non-members: test images of the same ages. MIA accuracies should "
        "match R's; LiRA AUC 0.5 is chance; 'retrained (another seed)' is the perfect-forget sanity row. The "
        "NeurIPS score is in the next table.\n\n" + table,
    ]
    if result.neurips:
        k = result.neurips[0]["k"]
        parts.append(
            f"**NeurIPS 2023 forget score** (K = {k} models per side; the prediction as the per-example score). "
            "Raw: the challenge's score against K retrained models (seeds 0..K-1). F_rr: a second set of K "
            "retrained models (seeds K..2K-1) scored the same way, the best a method can reach (two sets from one "
            "distribution score about 0.2, not 1). Calibrated: raw / F_rr; 95% intervals from a paired bootstrap "
            "over the forget examples (they leave out the draw of the K models themselves: how far the sanity row "
            "lands from 1 shows that uncertainty). Protocols: 'one original' = K unlearning runs of one original "
            "with K seeds "
            "(the challenge's), 'K originals' = one run from each of K originals trained with K seeds; "
            "deterministic methods only under the latter. The sanity row scores a third set of K retrained models "
            "(seeds 2K..3K-1) and should calibrate to about 1. Spread ratio: median over forget examples of the "
            "runs' sd over the retrained runs' sd (below 1 is punished). `neurips.csv` has both scalars."
            + _neurips_coverage(rows, result.neurips)
            + "\n\n"
            + neurips_table(result.neurips)
        )
    if result.interclass_confusion:
        swapped = result.interclass_confusion[0].get("swapped_per_group", 100)
        parts.append(
            f"**Interclass confusion** (labels of {swapped} train images aged 20-28 and {swapped} aged 53-60 swapped, "
            "then forgotten; 0 = predicts the true age, 1 = the swapped label)\n\n"
            + markdown_table(
                ["model", "confusion"], [[r["model"], format_cell(r["confusion"])] for r in result.interclass_confusion]
            )
        )
    if result.feature_injection:
        parts.append(
            "**Feature injection** (a linear head with one extra feature equal to the standardised label on "
            "forget samples, 0 elsewhere; its weight should return to R's)\n\n"
            + markdown_table(
                ["model", "injected weight", "relative to O"],
                [
                    [r["model"], format_cell(r["injected_weight"]), format_cell(r["relative_to_original"])]
                    for r in result.feature_injection
                ],
            )
        )
    return "\n\n".join(parts)


def _memorising_section(result: StudyResult) -> str:
    """The verdicts again with models that memorise their training faces, where U-LiRA can find something."""
    summary, rows = result.memorising_summary, result.memorising
    fit = summary["fit"]
    columns = [(key, title) for key, title in VERDICT_COLUMNS if any(key in row for row in rows)]
    table = markdown_table(
        [title for _, title in columns], [[format_cell(row.get(key)) for key, _ in columns] for row in rows]
    )
    original = next((r for r in rows if r["model"] == "original"), {})
    retrained = next((r for r in rows if r["model"] == "retrained (another seed)"), {})
    memorises = original.get("ulira_auc") is not None and original["ulira_auc"] >= 0.6
    return (
        f"Models trained {fit['epochs']} epochs without early stopping (lr {fit['lr']:g}, batch {fit['batch_size']}) "
        f"on group {result.config['sweep_group']}'s split, seed 0: O's train MAE "
        f"{summary['original_train_mae']:.2f} against test MAE {summary['original_test_mae']:.2f}; R's retain-train "
        f"MAE {summary['retrained_retain_train_mae']:.2f} against test {summary['retrained_test_mae']:.2f}. U-LiRA: "
        "shadow originals trained on retain-train plus a random half of the forget set, each then unlearned by the "
        "method under test; per forget example, Gaussians of its prediction under the shadows that trained on it "
        "and forgot it and under those that never did; AUC 0.5 is a perfect forget. O's row: the shadows as "
        "trained; 'retrained (another seed)': shadows retrained without the forget set, the sanity row. "
        f"O's U-LiRA AUC is {format_cell(original.get('ulira_auc'))} and R's "
        f"{format_cell(retrained.get('ulira_auc'))}: "
        + (
            "the models memorise, so a method's AUC near 0.5 is evidence that it forgot."
            if memorises
            else "below 0.6, the attack finds little even in O: an AUC near 0.5 certifies little here."
        )
        + f" (This invocation: {summary['minutes']:.1f} min; models and verdict rows already in the cache are "
        "loaded, not recomputed.)\n\n" + table
    )


# -- plots ---------------------------------------------------------------------------------------------------
def _save(figure, path: Path) -> None:
    figure.tight_layout()
    atomic_write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def _plot_alpha(results: list[StudyResult], path: Path) -> None:
    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for axis, result in zip(axes[0], results):
        means = result.alpha.groupby(["method", "alpha"])["forgetting"].mean().reset_index()
        for method, table in means.groupby("method"):
            style = ":" if method in (ORIGINAL, RETRAINED_OTHER) else "-"
            axis.plot(
                table["alpha"],
                table["forgetting"],
                style,
                marker="o",
                markersize=3,
                color=colour(method),
                label=method_label(method),
            )
        alphas = sorted(thesis.ALPHA)
        for index, method in enumerate(thesis.METHOD_ORDER):
            axis.plot(
                alphas,
                [thesis.ALPHA[a][index] for a in alphas],
                linestyle="--",
                color=colour(method),
                alpha=0.5,
                label=f"{method_label(method)} (thesis)",
            )
        axis.set(
            title=f"Forgetting vs alpha ({result.scope} scope, group {result.config['sweep_group']})",
            xlabel="alpha",
            ylabel="Forgetting",
            ylim=(0, 1.02),
        )
        axis.legend(fontsize=6, ncol=2)
    _save(figure, path)


def _plot_sweep(result: StudyResult, path: Path) -> None:
    runs = _cells(result.runs, "sweep")
    methods = list(result.best)
    columns = min(4, max(1, len(methods)))
    rows = int(np.ceil(len(methods) / columns)) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    original = runs[runs["method"] == ORIGINAL]
    other = runs[runs["method"] == RETRAINED_OTHER]
    for axis, method in zip(axes.flat, methods):
        spec = get_method(method)
        cells = runs[runs["method"] == method]
        for metric, marker in (("utility", "o"), ("forgetting", "s")):
            stats = cells.groupby("value")[metric].agg(["mean", "std"])
            axis.errorbar(
                stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker=marker, capsize=2, label=metric
            )
            published = thesis.EPOCH_SWEEP.get(method, {}).get(metric) if spec.knob.name == "epochs" else None
            if published:
                axis.plot(thesis.EPOCHS, published, linestyle="--", alpha=0.5, label=f"{metric} (thesis)")
        axis.axhline(original["forgetting"].mean(), color=colour(ORIGINAL), linestyle=":", linewidth=1, label="Fg of O")
        axis.axhline(
            other["forgetting"].mean(),
            color=colour(RETRAINED_OTHER),
            linestyle=":",
            linewidth=1,
            label="Fg of R (other seed)",
        )
        axis.set(title=spec.label, xlabel=spec.knob.title)
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(methods) :]:
        axis.axis("off")
    figure.suptitle(f"Knob sweeps on group {result.config['sweep_group']} ({result.scope} scope)")
    _save(figure, path)


def _plot_f_vs_time(results: list[StudyResult], path: Path) -> None:
    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for axis, result in zip(axes[0], results):
        board = leaderboard(result)
        for row in board.to_dict("records"):
            axis.scatter(
                row["time_ratio"], row["F"], color=colour(row["method"]), marker="s" if row["reference"] else "o", s=40
            )
            axis.annotate(
                row["label"], (row["time_ratio"], row["F"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        axis.set(
            xscale="log",
            xlabel="time / retraining (log scale)",
            ylabel="mean F (all groups, seeds)",
            title=f"F against cost ({result.scope} scope)",
        )
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.grid(alpha=0.3, which="both")
    _save(figure, path)


def _plot_per_sample(result: StudyResult, path: Path) -> None:
    table = result.per_sample.sort_values("age").reset_index(drop=True)
    methods = [c for c in table.columns if c not in ("id", "age", ORIGINAL, RETRAINED)]
    figure, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True, sharey=True)
    for method in (ORIGINAL, RETRAINED):
        axes[0].plot(
            table.index, table[method], marker=".", linewidth=0.8, color=colour(method), label=method_label(method)
        )
    axes[1].plot(
        table.index, table[RETRAINED], linewidth=0.8, color=colour(RETRAINED), alpha=0.35, label="R (reference)"
    )
    for method in methods:
        axes[1].plot(table.index, table[method], linewidth=0.7, color=colour(method), label=method_label(method))
    for axis in axes:
        axis.set(ylabel="absolute error (years)")
        axis.legend(fontsize=7, ncol=3)
    axes[1].set(xlabel="100 fixed random test images, sorted by age")
    axes[0].set(
        title=f"Per-sample absolute error, seed {result.config['seeds'][0]} ({result.scope} scope; thesis Figs. 11-12)"
    )
    _save(figure, path)


def _comparison(results: list[StudyResult]) -> str:
    rows = []
    for result in results:
        sweep = _cells(result.runs, "sweep")
        o = sweep[sweep["method"] == ORIGINAL]
        r = sweep[sweep["method"] == RETRAINED]
        board = leaderboard(result)
        methods = board[~board["reference"]]
        top = methods.iloc[0] if len(methods) else None
        rows.append(
            [
                result.scope,
                mean_std(o["test_mae"]),
                mean_std(r["test_mae"]),
                mean_std(o["forgetting"]),
                "-"
                if top is None
                else f"{top['label']} ({top['setting']}): F {top['F']:.3f}, time {top['time_ratio']:.2f}",
                f"{result.seconds / 60:.1f}",
            ]
        )
    return markdown_table(
        [
            "scope",
            "M_O test MAE",
            "M_R^0 test MAE",
            "Fg(O), group 0",
            "best method (mean F, all groups)",
            "minutes (this run)",
        ],
        rows,
    ) + (
        "\n\nMinutes are this invocation's: cached models and cells are loaded, not recomputed; the fresh "
        "timings of each scope's study are in BENCHMARKS.md."
    )


def lossless_values(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its knob values as text that reads back exactly (``repr``: 1e-07 stays 1e-07, where the
    tables' 5 decimals would print 0.00000); metrics keep the 5 decimals."""
    if "value" not in table:
        return table
    text = table["value"].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else repr(v))
    return table.assign(value=text)


def write_report(results: list[StudyResult], out: str | Path, meta: dict) -> Path:
    """Write the report folder; returns the path of ``index.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.concat([r.runs for r in results], ignore_index=True)
    tuned_runs = [r.tuned_runs.assign(experiment="methods (tuned)") for r in results if len(r.tuned_runs)]
    all_runs = pd.concat([runs, *tuned_runs], ignore_index=True)
    atomic_write_text(out / "runs.csv", lossless_values(all_runs).to_csv(index=False, float_format="%.5f"))
    if tuned_runs:
        table = pd.concat([default_vs_tuned(r) for r in results if r.tuned], ignore_index=True)
        atomic_write_text(out / "default_vs_tuned.csv", table.to_csv(index=False, float_format="%.5f"))
    bars = [against_retraining(r) for r in results]  # one per result, in order
    if any(len(table) for table in bars):
        atomic_write_text(
            out / "against_retraining.csv", pd.concat(bars, ignore_index=True).to_csv(index=False, float_format="%.5f")
        )
    boards = pd.concat([leaderboard(r) for r in results], ignore_index=True)
    atomic_write_text(out / "leaderboard.csv", boards.to_csv(index=False, float_format="%.5f"))
    atomic_write_text(out / "alpha.csv", pd.concat([r.alpha for r in results]).to_csv(index=False, float_format="%.5f"))
    verdicts = [dict(row, scope=r.scope, regime="early-stopped") for r in results for row in r.verdicts]
    verdicts += [dict(row, scope=r.scope, regime="memorising") for r in results for row in r.memorising]
    if verdicts:
        table = in_column_order(verdicts, VERDICT_CSV_COLUMNS)
        atomic_write_text(out / "verdicts.csv", table.to_csv(index=False, float_format="%.5f"))
    neurips = [dict(row, scope=r.scope) for r in results for row in r.neurips]
    if neurips:
        table = in_column_order(neurips, NEURIPS_CSV_COLUMNS)
        atomic_write_text(out / "neurips.csv", table.to_csv(index=False, float_format="%.5f"))
    predictions = pd.concat([r.predictions for r in results], ignore_index=True)
    atomic_write_with(out / "predictions.csv.gz", lambda tmp: predictions.to_csv(tmp, index=False, compression="gzip"))
    for result in results:
        atomic_write_text(
            out / f"per_sample_errors_{result.scope}.csv", result.per_sample.to_csv(index=False, float_format="%.4f")
        )
        _plot_per_sample(result, out / f"per_sample_errors_{result.scope}.png")
        _plot_sweep(result, out / f"sweep_{result.scope}.png")
    _plot_alpha(results, out / "forgetting_vs_alpha.png")
    _plot_f_vs_time(results, out / "f_vs_time.png")
    atomic_write_json(
        out / "summary.json",
        {
            **meta,
            "scopes": {
                r.scope: {
                    "best": r.best,
                    "minutes": round(r.seconds / 60, 2),
                    "models": r.model_summary,
                    "config": r.config,
                    "interclass_confusion": r.interclass_confusion,
                    "feature_injection": r.feature_injection,
                    "memorising": r.memorising_summary,
                    "tuned": r.tuned,
                    "tuned_setups": r.tuned_setups,
                }
                for r in results
            },
        },
    )

    sections = [
        "# olvido study report",
        f"Command: `{meta.get('command', '')}`  \nDate: {meta.get('date', '')}  \n"
        f"Data: {meta.get('data', '')}, manifest `{meta.get('manifest', '')}`  \n"
        f"Preset: {meta.get('preset', '-')}  \nMachine: {meta.get('machine', '')}",
        "All numbers are means ± standard deviations over seeds (each seed trains its own models and "
        "unlearning runs). Forgetting uses alpha = 15 unless a table varies alpha. The thesis's Forgetting "
        "values carry its all-pairs averaging bug (THESIS.md section 5): compare their trends, not their digits.",
        "## Scopes side by side\n\n" + _comparison(results),
    ]
    for result, bar in zip(results, bars):
        sections += [
            f"## Scope `{result.scope}`",
            "### What the numbers say\n\n" + _findings(result),
            "### Leaderboard: every method on every group\n\n" + _leaderboard_section(result),
            *(["### Default against tuned\n\n" + _tuned_section(result)] if result.tuned else []),
            *(["### Against retraining: the bar\n\n" + _bar_section(result, bar)] if len(bar) else []),
            "### Models\n\n" + _models_section(result),
            "### Experiment 1 (Table 3): Forgetting vs alpha\n\n" + _alpha_section(result),
            "### Experiment 2 (Tables 4-7): each method's knob\n\n" + _sweep_section(result),
            "### Experiment 3 (Table 8): forget groups\n\n" + _groups_section(result),
            "### Wall time\n\n" + _timing_section(result),
            *(
                ["### Verdicts: attacks, NeurIPS score, distances, sanity tests\n\n" + _verdicts_section(result)]
                if result.verdicts
                else []
            ),
            *(
                ["### Verdicts where models memorise: U-LiRA\n\n" + _memorising_section(result)]
                if result.memorising
                else []
            ),
            f"![per-sample errors](per_sample_errors_{result.scope}.png)",
        ]
    sections += [
        "## Plots\n\n![Forgetting vs alpha](forgetting_vs_alpha.png)",
        "## Files\n\n`runs.csv` (one row per cell and experiment; knob values as exact text, the configuration as "
        "JSON), `leaderboard.csv`, `default_vs_tuned.csv`, "
        "`against_retraining.csv` (each setting on the sweep group against the bar), `alpha.csv`, "
        "`per_sample_errors_<scope>.csv`, `predictions.csv.gz` (every reported cell's test and forget-set predictions, "
        "tuned cells included, in years to 3 decimals: scope, method, group, value, config (the cell's whole "
        "configuration, JSON), seed, set, id, age, prediction; every row of `runs.csv` re-derives from it, "
        "`bench/verify_report.py`), `verdicts.csv` (every verdict "
        "column, per scope and regime; its `seconds` are the verdict runs' own wall times, under whatever load "
        "they ran with: time methods by the leaderboard), `neurips.csv` (the NeurIPS score per model, protocol "
        "and scalar), `summary.json`.",
    ]
    index = out / "index.md"
    atomic_write_text(index, "\n\n".join(sections) + "\n")
    return index
