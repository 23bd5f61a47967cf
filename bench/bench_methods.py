"""Issue 9 benchmark: the methods experiment alone (every method at its chosen value, 5 forget groups x 3
seeds, with O, R and R (another seed)), on real UTKFace, timed from an empty model and cell cache.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_methods.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE --scope head --executor ray

The methods' values come from the committed study (``--values-from``: its runs.csv, the methods experiment's
value of each method in the scope), so the sweep that chose them is not part of the timing, as in the
issue's criterion. ``--methods issue9`` is the issue's set (the thesis's FT and RND and the seven methods of
issue 9 that support the scope); ``all`` every method of the scope. The cache gets only the face-pretrained
backbone, decoded images and cached features from ``--warm-cache``: every O, R, R (another seed) and every
unlearning run is computed inside the timing. Wall: this process's time with the chosen executor (Ray: one
task per core, one torch thread each); cells: the sum of each cell's own measured seconds, with O counted
once per seed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.executor import get_executor
from olvido.experiments.study import ORIGINAL, Study, comparable_methods
from olvido.methods import THESIS_METHODS
from olvido.pipeline import RunConfig, workspace_for

from common import copy_warm_cache, write_section

ISSUE_9 = THESIS_METHODS + (
    "reset_distill",
    "scrub",
    "neggrad_plus",
    "msg",
    "ct",
    "blindspot",
    "gaussian_amnesiac",
)


def committed_values(runs_csv: Path, scope: str, methods: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    runs = pd.read_csv(runs_csv)
    chosen = runs[(runs["experiment"] == "methods") & (runs["scope"] == scope) & runs["method"].isin(methods)]
    values = chosen.groupby("method")["value"].first()
    missing = sorted(set(methods) - set(values.index))
    if missing:
        raise SystemExit(f"--values-from {runs_csv}: no methods-experiment value for {', '.join(missing)} in {scope}")
    return tuple((method, float(values[method])) for method in methods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--scope", default="head")
    parser.add_argument("--methods", default="issue9", help="issue9, all, or a comma-separated list")
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--values-from", default="docs/results/runs.csv")
    args = parser.parse_args()
    scope_methods = comparable_methods(args.scope)
    if args.methods == "issue9":
        methods = tuple(m for m in ISSUE_9 if m in scope_methods)
    elif args.methods == "all":
        methods = scope_methods
    else:
        methods = tuple(args.methods.split(","))
    config = RunConfig.from_preset("thesis", (args.scope,))
    study_config = replace(
        config.study, methods=methods, best=committed_values(Path(args.values_from), args.scope, methods)
    )
    cache = Path(tempfile.mkdtemp(prefix="olvido-bench-methods-"))
    copy_warm_cache(args.warm_cache, cache)
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
    workspace = workspace_for(prepared, config, args.scope, cache, progress=False)
    _ = workspace.inputs  # feature extraction is a one-time cost, as the face pretraining
    with get_executor(args.executor, progress=False) as executor:
        began = time.perf_counter()
        runs = Study(workspace, study_config, progress=False, executor=executor).run_methods()
        wall = time.perf_counter() - began
    shutil.rmtree(cache)
    once = runs[runs["method"] == ORIGINAL].drop_duplicates("seed")
    cells = pd.concat([runs[runs["method"] != ORIGINAL], once])
    per_method = cells.groupby("method")["seconds"].agg(["count", "sum"]).sort_values("sum", ascending=False)
    rows = "\n".join(
        f"| {method} | {int(row['count'])} | {row['sum'] / 60:.2f} |" for method, row in per_method.iterrows()
    )
    body = (
        f"Scope `{args.scope}`, methods ({args.methods}): {', '.join(f'{m} {v:g}' for m, v in study_config.best)}; "
        f"groups {', '.join(map(str, config.study.groups))} x seeds {', '.join(map(str, config.study.seeds))}; "
        f"executor {args.executor}. Every model and cell computed inside the timing.\n\n"
        f"| measure | minutes |\n| --- | --- |\n| wall (this process, executor {args.executor}) | {wall / 60:.1f} |\n"
        f"| cells (sum of each cell's own seconds) | {cells['seconds'].sum() / 60:.1f} |\n\n"
        f"| cell | cells | minutes |\n| --- | --- | --- |\n{rows}"
    )
    write_section(
        f"Methods experiment alone, {args.scope} scope, {args.methods} methods, executor {args.executor} (issue 9)",
        body,
        f"bench/bench_methods.py --data {args.data} --warm-cache CACHE --scope {args.scope} --methods {args.methods} "
        f"--executor {args.executor}",
    )
    print(body)


if __name__ == "__main__":
    main()
