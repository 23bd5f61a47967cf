"""Issues 4, 8 and 9 benchmark: the whole study (``olvido run``) on real UTKFace, timed per experiment and
scope, with the methods leaderboard and issue 9's criteria computed from it; the report goes to --out.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_study.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --scopes head,last --out docs/results --warm-cache CACHE

With --warm-cache, the face-pretrained backbone, decoded images and cached features are copied from that
cache into a fresh one first; trained models and study cells are not copied, so every model of the study
is really trained and every cell computed inside the timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.experiments.study import ORIGINAL, RETRAINED_OTHER, Study, method_label
from olvido.methods import THESIS_METHODS
from olvido.pipeline import RunConfig, run_all, workspace_for
from olvido.report.study_report import leaderboard

from common import copy_warm_cache, write_section


def criteria(result) -> list[str]:
    """Issue 9's measured criteria, from the study's own cells."""
    runs = result.runs
    methods = runs[(runs["experiment"] == "methods") & ~runs["method"].isin([ORIGINAL, RETRAINED_OTHER, "retrained"])]
    new = [m for m in result.best if m not in THESIS_METHODS]
    lines = []
    for group, cells in methods.groupby("group"):
        means = cells.groupby("method")["F"].mean()
        best_new = means[new].idxmax()
        verdict = "yes" if means[best_new] >= means.get("finetune", float("inf")) else "NO"
        lines.append(
            f"| {int(group)} | {method_label(best_new)} {means[best_new]:.3f} | FT {means.get('finetune', float('nan')):.3f} "
            f"| {verdict} |"
        )
    sweep = runs[(runs["experiment"] == "sweep") & (runs["group"] == result.config["sweep_group"])]
    target = sweep[sweep["method"] == RETRAINED_OTHER]["forgetting"].mean()
    hits = []
    for (method, value), cells in sweep[sweep["method"].isin(new)].groupby(["method", "value"]):
        fg, u, ratio = cells["forgetting"].mean(), cells["utility"].mean(), cells["time_ratio"].mean()
        if fg >= target and u >= 1.0 and ratio <= 0.3:
            hits.append(f"{method_label(method)} ({value:g}): Fg {fg:.3f}, U {u:.2f}, time {ratio:.2f}")
    table = "| group | best new method (mean F) | FT | best new >= FT |\n| --- | --- | --- | --- |\n" + "\n".join(lines)
    return [
        table,
        f"Group {result.config['sweep_group']}: Forgetting of a second retrained model {target:.3f}; new methods "
        f"reaching it with Utility >= 1.0 at <= 30% of retraining time, at any swept value: "
        f"{'; '.join(hits) if hits else 'none'}.",
    ]


def cell_minutes(runs: pd.DataFrame) -> dict[str, float]:
    """Per experiment, the summed wall time of its cells as each was measured when computed. O is trained
    once per seed and shared by every group, so its training counts once per seed, not once per group."""
    once = runs[runs["method"] == ORIGINAL].drop_duplicates(["experiment", "seed"])
    cells = pd.concat([runs[runs["method"] != ORIGINAL], once])
    return {name: group["seconds"].sum() / 60 for name, group in cells.groupby("experiment")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--scopes", default="head")
    parser.add_argument("--out", required=True)
    parser.add_argument("--warm-cache", default=None, help="copy backbone, images and features from this cache")
    parser.add_argument("--cache", default=None, help="cache to use (default: a fresh temporary folder)")
    parser.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="executor of the report run's verdicts (the timed experiments always run here, one cell at a time)",
    )
    parser.add_argument(
        "--memorising-shadows",
        type=int,
        default=None,
        help="U-LiRA shadows of the memorising regime (default: the thesis preset's; 0 skips the regime)",
    )
    parser.add_argument(
        "--tuned",
        nargs="+",
        default=None,
        help="folders `olvido tune` wrote (docs/results/tuned; the last wins where several tune a method): the "
        "report shows those methods default against tuned",
    )
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="olvido-bench-study-"))
    if args.warm_cache:
        copy_warm_cache(args.warm_cache, cache)
    started = time.perf_counter()
    data = None if args.data == "synthetic" else args.data
    prepared = prepare_dataset(data, ProtocolConfig(), cache=cache, progress=False)
    scopes = tuple(args.scopes.split(","))
    config = RunConfig.from_preset("thesis", scopes)
    if args.memorising_shadows is not None:
        config = config.with_memorising_shadows(args.memorising_shadows)
    if args.tuned:
        config = replace(config, tuned_dirs=tuple(args.tuned))
    timings = {}
    for scope in scopes:  # the two training experiments, timed on their own (the report run reuses their cells)
        workspace = workspace_for(prepared, config, scope, cache, progress=False)
        _ = workspace.inputs  # feature extraction is a one-time cost, as the face pretraining
        study = Study(workspace, config.study, progress=False)
        began = time.perf_counter()
        study.run_sweep()
        swept = time.perf_counter()
        study.run_methods()
        timings[scope] = {"sweep": swept - began, "methods": time.perf_counter() - swept}
    began = time.perf_counter()
    run = run_all(prepared, replace(config, executor=args.executor), args.out, args.data, cache=cache, progress=False)
    report_minutes = (time.perf_counter() - began) / 60
    total = time.perf_counter() - started
    parts = []
    for result in run.results:
        board = leaderboard(result)
        rows = "\n".join(
            f"| {r['label']} | {r['setting']} | {r['F']:.3f} | {r['utility']:.2f} | {r['forgetting']:.3f} | "
            f"{r['wasserstein']:.2f} | {r['seconds']:.1f} | {r['time_ratio']:.3f} |"
            for r in board.to_dict("records")
        )
        timing = timings[result.scope]
        compute = cell_minutes(result.runs)
        parts.append(
            f"""### Scope `{result.scope}` (ensembles of {result.model_summary["architecture"]["ensemble"]})

Wall: this process's time (cells already in the cache are loaded, not recomputed); cells: the sum of every
cell's own measured time, i.e. the experiment run alone from an empty cell cache (group 0's cells count in
both experiments, as each needs them).

| experiment | wall minutes | cells' minutes |
| --- | --- | --- |
| sweep: every method's knob on group 0, with O, R and R (another seed), 3 seeds | {timing["sweep"] / 60:.1f} | {compute["sweep"]:.1f} |
| methods experiment: every method at its best value, 5 groups x 3 seeds | {timing["methods"] / 60:.1f} | {compute["methods"]:.1f} |

| method | setting | mean F | U | Fg | W1 to R | seconds | time / retrain |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

"""
            + "\n\n".join(criteria(result))
        )
    cells = pd.concat([r.runs for r in run.results])
    body = (
        f"Cache: backbone, decoded images and features warm; every model and cell computed in the timings "
        f"({len(cells.drop_duplicates(['scope', 'method', 'group', 'value', 'seed']))} cells). Then the report run "
        f"(alpha experiment, verdicts, plots) took {report_minutes:.1f} min; total {total / 60:.1f} min. "
        f"Report: `{args.out}/index.md`.\n\n" + "\n\n".join(parts)
    )
    write_section(
        f"Unlearning methods on {'UTKFace' if data else 'synthetic faces'}, {args.scopes} (issues 8-9)",
        body,
        f"bench/bench_study.py --data {args.data} --scopes {args.scopes} --out {args.out}"
        + (" --warm-cache CACHE" if args.warm_cache else "")
        + (f" --executor {args.executor}" if args.executor != "local" else "")
        + (f" --memorising-shadows {args.memorising_shadows}" if args.memorising_shadows is not None else "")
        + (f" --tuned {' '.join(args.tuned)}" if args.tuned else ""),
    )
    print(body)


if __name__ == "__main__":
    main()
