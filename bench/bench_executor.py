"""Issue 11 benchmark: the verdicts of one or more methods (head scope, forget group 0, K models per side)
under each executor, from an empty model cache: wall time, speed-up over the default local executor, and
whether the numbers are identical.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_executor.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE
    # issue 11's K = 128 criterion, Ray only:
    ... bench/bench_executor.py --data ... --warm-cache CACHE --runs ray --k 128 \
        --methods finetune=2,random_labels=2,blindspot=1

Each run gets a fresh cache holding only the face-pretrained backbone, decoded images and features (copied
from --warm-cache), so every model (R, O, the reference and calibration sets of K retrained models) and
every unlearning run is computed inside its timing. Runs: ``local`` (the default: one job after another,
this process's torch threads), ``local1`` (one torch thread per job, as every Ray task) and ``ray`` (a
local Ray with this machine's cores, one CPU and one thread per task).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from olvido.data import ProtocolConfig, parse_forget, prepare_dataset
from olvido.executor import get_executor
from olvido.experiments.study import canonical_value
from olvido.experiments.verdicts import VerdictConfig, Verdicts
from olvido.experiments.workspace import ModelConfig, Workspace

from common import copy_warm_cache, write_section

RUNS = {
    "local": ("local", dict(name="local")),
    "local1": ("local, 1 thread", dict(name="local", threads=1)),
    "ray": ("ray", dict(name="ray")),
}
NUMBERS = ("raw", "f_rr", "calibrated", "calibrated_low", "calibrated_high", "spread_ratio", "final_score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--methods", default="finetune=2", help="method=value pairs, comma-separated")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--protocols", default="one original")
    parser.add_argument("--runs", default="local,local1,ray", help=f"comma-separated, among {', '.join(RUNS)}")
    args = parser.parse_args()
    methods = {name: canonical_value(float(value)) for name, value in (p.split("=") for p in args.methods.split(","))}
    protocols = tuple(p.strip() for p in args.protocols.split(","))
    results = {}
    for label, options in (RUNS[run.strip()] for run in args.runs.split(",")):
        cache = Path(tempfile.mkdtemp(prefix="olvido-bench-executor-"))
        copy_warm_cache(args.warm_cache, cache)
        prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
        ws = Workspace(prepared, ModelConfig(scope="head"), cache=cache, progress=False)
        _ = ws.inputs  # the cached embeddings, loaded outside the timing
        split = parse_forget(prepared.manifest, "group:0")
        config = VerdictConfig(k=args.k, shadows=0, protocols=protocols)
        started = time.perf_counter()
        with get_executor(progress=False, **options) as executor:
            verdicts = Verdicts(ws, split, config, progress=False, executor=executor)
            rows = verdicts.evaluate(methods, with_original=False, with_sanity=False)
        results[label] = (time.perf_counter() - started, rows, verdicts.neurips)
        shutil.rmtree(cache)
        print(label, round(results[label][0], 1), flush=True)

    def same(a: str, b: str) -> bool:
        numbers = lambda rows: [[row[k] for k in NUMBERS] for row in rows]  # noqa: E731
        single = lambda rows: [[v for k, v in row.items() if "seconds" not in k] for row in rows]  # noqa: E731
        return numbers(results[a][2]) == numbers(results[b][2]) and single(results[a][1]) == single(results[b][1])

    base = results["local"][0] if "local" in results else None
    table = "\n".join(
        f"| {label} | {seconds / 60:.1f} | {f'{base / seconds:.2f}x' if base else '-'} |"
        for label, (seconds, _, _) in results.items()
    )
    last = list(results)[-1]
    scores = "\n".join(
        f"| {r['model']} | {r['protocol']} | {r['raw']:.3f} | {r['f_rr']:.3f} | {r['calibrated']:.3f} "
        f"[{r['calibrated_low']:.3f}, {r['calibrated_high']:.3f}] | {r['spread_ratio']:.2f} |"
        for r in results[last][2]
        if r["scalar"] == "prediction"
    )
    comparisons = []
    if {"ray", "local, 1 thread"} <= set(results):
        comparisons.append(f"ray vs local with one thread per job: **{same('ray', 'local, 1 thread')}**")
    if {"ray", "local"} <= set(results):
        largest = max(abs(a[k] - b[k]) for a, b in zip(results["ray"][2], results["local"][2]) for k in NUMBERS)
        comparisons.append(
            f"ray vs local with this process's threads: {same('ray', 'local')} (sums split over two threads round "
            f"differently; largest difference of a forget-score number {largest:.2g})"
        )
    body = (
        f"Head scope, forget group 0 ({len(split.forget)} images), {args.methods}, K = {args.k} per side "
        f"(reference and calibration sets of retrained models), protocols: {', '.join(protocols)}; no LiRA "
        "shadows. Every model trained and every unlearning run computed inside the timing.\n\n"
        "| executor | minutes | speed-up over local |\n| --- | --- | --- |\n"
        + table
        + (
            f"\n\nIdentical numbers (every verdict and NeurIPS number, seconds aside): {'; '.join(comparisons)}."
            if comparisons
            else ""
        )
        + f"\n\nForget scores ({last}; the prediction as the per-example score):\n\n"
        "| method | protocol | raw | F_rr | calibrated [95%] | spread ratio |\n| --- | --- | --- | --- | --- | --- |\n"
        + scores
    )
    runs = ",".join(r for r in RUNS if RUNS[r][0] in results)
    title = (
        "Executors: verdicts of one method, local and Ray (issue 11)"
        if len(results) > 1
        else f"Verdicts at K = {args.k} with {last} (issue 11)"
    )
    write_section(
        title,
        body,
        f"bench/bench_executor.py --data {args.data} --warm-cache CACHE --methods {args.methods} --k {args.k} "
        f'--protocols "{args.protocols}" --runs {runs}',
    )
    print(body)


if __name__ == "__main__":
    main()
