"""Issue 11 benchmark: the verdicts of one method (head scope, forget group 0, K models per side) under each
executor, from an empty model cache: wall time, speed-up over the default local executor, and whether the
numbers are identical.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_executor.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE

Each run gets a fresh cache holding only the face-pretrained backbone, decoded images and features (copied
from --warm-cache), so every model (R, O, the reference and calibration sets of K retrained models) and
every unlearning run is computed inside its timing. Runs: ``local`` (the default: one job after another,
this process's torch threads), ``local, 1 thread`` (one torch thread per job, as every Ray task) and
``ray`` (a local Ray with this machine's cores, one CPU and one thread per task).
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

RUNS = (("local", dict(name="local")), ("local, 1 thread", dict(name="local", threads=1)), ("ray", dict(name="ray")))
NUMBERS = ("raw", "f_rr", "calibrated", "calibrated_low", "calibrated_high", "spread_ratio", "final_score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--method", default="finetune=2")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--protocols", default="one original")
    args = parser.parse_args()
    method, value = args.method.split("=")
    protocols = tuple(p.strip() for p in args.protocols.split(","))
    results = {}
    for label, options in RUNS:
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
            rows = verdicts.evaluate({method: canonical_value(float(value))}, with_original=False, with_sanity=False)
        results[label] = (time.perf_counter() - started, rows, verdicts.neurips)
        shutil.rmtree(cache)
        print(label, round(results[label][0], 1), flush=True)

    def same(a: str, b: str) -> bool:
        numbers = lambda rows: [[row[k] for k in NUMBERS] for row in rows]  # noqa: E731
        single = lambda rows: [[v for k, v in row.items() if "seconds" not in k] for row in rows]  # noqa: E731
        return numbers(results[a][2]) == numbers(results[b][2]) and single(results[a][1]) == single(results[b][1])

    base = results["local"][0]
    table = "\n".join(
        f"| {label} | {seconds / 60:.1f} | {base / seconds:.2f}x |" for label, (seconds, _, _) in results.items()
    )
    first = next(r for r in results["ray"][2] if r["scalar"] == "prediction")
    body = (
        f"Head scope, forget group 0 ({len(split.forget)} images), {method} at {value}, K = {args.k} per side "
        f"(reference and calibration sets of retrained models), protocols: {', '.join(protocols)}; no LiRA "
        "shadows. Every model trained and every unlearning run computed inside the timing.\n\n"
        "| executor | minutes | speed-up over local |\n| --- | --- | --- |\n"
        + table
        + f"\n\nIdentical numbers (every verdict and NeurIPS number, seconds aside): ray vs local with one thread "
        f"per job: **{same('ray', 'local, 1 thread')}**; ray vs local with this process's threads: "
        f"{same('ray', 'local')} (sums split over two threads round differently). Calibrated score under Ray: "
        f"{first['calibrated']:.3f} [{first['calibrated_low']:.3f}, {first['calibrated_high']:.3f}], raw "
        f"{first['raw']:.3f}, F_rr {first['f_rr']:.3f}, spread ratio {first['spread_ratio']:.2f}; largest "
        f"difference of a forget-score number between ray and local: "
        f"{max(abs(a[k] - b[k]) for a, b in zip(results['ray'][2], results['local'][2]) for k in NUMBERS):.2g}."
    )
    write_section(
        "Executors: verdicts of one method, local and Ray (issue 11)",
        body,
        f"bench/bench_executor.py --data {args.data} --warm-cache CACHE --method {args.method} --k {args.k} "
        f'--protocols "{args.protocols}"',
    )
    print(body)


if __name__ == "__main__":
    main()
