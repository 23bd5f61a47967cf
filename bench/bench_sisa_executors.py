"""Issue 12 benchmark: training a SISA model's shards with the local executor and with Ray, on real UTKFace.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_sisa_executors.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE --scopes head,last --repeats 3

Each executor is started once (for Ray: ``ray.init`` with this machine's cores), then trains the S x R SISA
model from scratch 1 + ``--repeats`` times, each into a fresh slice store. The first training is reported
on its own: on Ray it includes each worker process importing torch and olvido (a long-lived cluster pays
that once); the speed-up is the ratio of the medians of the later trainings. ``local1`` is the local
executor with one torch thread per job: Ray's numbers must equal its numbers bit for bit.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.executor import get_executor
from olvido.experiments.sisa import Sisa, SisaConfig
from olvido.experiments.workspace import ModelConfig, Workspace

from common import copy_warm_cache, median, write_section

EXECUTORS = {"local": {"name": "local"}, "local1": {"name": "local", "threads": 1}, "ray": {"name": "ray"}}
LABELS = {"local": "local (one process, all cores)", "local1": "local, one thread", "ray": "ray (one task per core)"}


def run_scope(args, scope: str) -> dict:
    cache = Path(tempfile.mkdtemp(prefix=f"olvido-bench-sisa-executors-{scope}-"))
    copy_warm_cache(args.warm_cache, cache)
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
    ws = Workspace(prepared, ModelConfig(scope=scope), cache=cache, progress=False)
    _ = ws.inputs  # cached features, loaded outside the timings
    test = ws.split_ids("test")
    shards, slices = (int(v) for v in args.main.split("x"))
    config = SisaConfig(shards, slices, args.epochs)
    runs, predictions = {}, {}
    for name in args.executors.split(","):
        options = dict(EXECUTORS[name])
        with get_executor(options.pop("name"), progress=False, **options) as executor:
            seconds, work = [], []
            for run in range(1 + args.repeats):
                sisa = Sisa(ws, config, executor, store=cache / f"sisa-{name}-{run}")
                began = time.perf_counter()
                trained = sisa.train()
                seconds.append(time.perf_counter() - began)
                work.append(trained.seconds)
                if run == 0:
                    predictions[name] = ws.predict(trained.model, test)
                print(scope, name, run, round(seconds[-1], 2), flush=True)
        runs[name] = {"first": seconds[0], "later": seconds[1:], "work": work[1:]}
    shutil.rmtree(cache)
    return {"scope": scope, "runs": runs, "predictions": predictions, "train_size": len(ws.split_ids("train"))}


def markdown(result: dict, main: str) -> str:
    runs, predictions = result["runs"], result["predictions"]
    base = median(runs["local"]["later"]) if runs.get("local", {}).get("later") else None
    lines = [
        f"### {result['scope']} scope ({result['train_size']} training rows, S x R = {main})",
        "",
        "| executor | first training (s) | later trainings (s) | median of later (s) | speed-up over local "
        "| slices' own seconds, summed (median of later) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in runs.items():
        later = run["later"]
        middle = median(later) if later else float("nan")
        speedup = f"{base / middle:.2f}x" if base and later else "-"
        times = ", ".join(f"{s:.1f}" for s in later) or "-"
        work = f"{median(run['work']):.1f}" if run["work"] else "-"
        lines.append(f"| {LABELS[name]} | {run['first']:.1f} | {times} | {middle:.1f} | {speedup} | {work} |")
    if "ray" in predictions:
        lines.append("")
        for other in ("local1", "local"):
            if other in predictions:
                gap = float(np.abs(predictions["ray"] - predictions[other]).max())
                lines.append(f"Largest test-prediction difference, ray against {LABELS[other]}: {gap:.2g} years.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--scopes", default="head,last")
    parser.add_argument("--main", default="4x4", help="S x R of the SISA model")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="trainings after the first, per executor")
    parser.add_argument("--executors", default="local,local1,ray", help=f"any of {', '.join(EXECUTORS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.executors.split(",")) - set(EXECUTORS))
    if unknown:
        parser.error(f"--executors: unknown {', '.join(unknown)}; expected any of {', '.join(EXECUTORS)}")
    results = [run_scope(args, scope.strip()) for scope in args.scopes.split(",")]
    body = (
        "Shards as executor jobs, each executor started before its first training. Ray's first training "
        "includes its worker processes importing torch and olvido; the speed-up compares the medians of the "
        "later trainings (warm workers, as on a long-lived cluster). The slices' own seconds are summed over "
        "the shards: with two workers, the wall time can at best be half that sum; what is above is the cost "
        "of shipping jobs and results and of waiting for the slower worker.\n\n"
        + "\n\n".join(markdown(r, args.main) for r in results)
    )
    write_section(
        f"SISA shards, local against Ray, {args.scopes} scope (issue 12)",
        body,
        f"bench/bench_sisa_executors.py --data {args.data} --warm-cache CACHE --scopes {args.scopes} "
        f"--main {args.main} --repeats {args.repeats} --executors {args.executors}",
    )
    print(body)


if __name__ == "__main__":
    main()
