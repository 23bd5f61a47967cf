"""Issue 13 benchmark: tuning one method with Optuna on real UTKFace (default: FT, head scope, 50 trials),
from an empty model cache and an empty Optuna storage: the tuning seeds' originals and retrained models are
trained inside the timing, then every trial runs.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_tuning.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE [--method finetune] [--scope head]

Writes the tuned folder (tuned.yaml, tuning.csv/.md, plots) to --out and a section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.executor import get_executor
from olvido.experiments.tuning import Tuner, TuningConfig
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.pipeline import RunConfig
from olvido.report.tuning_report import write_tuning

from common import copy_warm_cache, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--scope", default="head")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--out", default=None, help="tuned folder (default: a temporary one)")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="olvido-bench-tuning-"))
    copy_warm_cache(args.warm_cache, cache)
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
    ensemble = dict(RunConfig().ensemble_by_scope).get(args.scope, 3)  # the study's models
    ws = Workspace(prepared, ModelConfig(scope=args.scope, ensemble=ensemble), cache=cache, progress=False)
    _ = ws.inputs  # the cached features, loaded outside the timing
    config = TuningConfig(trials=args.trials)
    with get_executor(args.executor, progress=False) as executor:
        tuner = Tuner(ws, args.method, config, executor=executor, progress=True)
        started = time.perf_counter()
        _ = tuner.references  # the six reference models, timed apart from the trials
        references = time.perf_counter() - started
        result = tuner.run()
        total = time.perf_counter() - started
    out = Path(args.out) if args.out else cache / "tuned"
    write_tuning(out, [result])
    terms = result.best_terms
    params = ", ".join(
        f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in result.best_params.items()
    )
    body = (
        f"{args.method}, {args.scope} scope (ensembles of {ensemble}), {args.trials} trials, executor {args.executor}, "
        f"tuning seeds {', '.join(map(str, config.seeds))}, tuning forget set: {len(tuner.split.forget)} of group "
        f"{config.group}'s training originals. From an empty model cache and Optuna storage.\n\n"
        "| phase | minutes |\n| --- | --- |\n"
        f"| the tuning seeds' originals and retrained models (6 trainings) | {references / 60:.1f} |\n"
        f"| {args.trials} trials | {(total - references) / 60:.1f} |\n"
        f"| **total** | **{total / 60:.1f}** |\n\n"
        f"Trials: {result.trials['complete']} complete, {result.trials['pruned']} pruned, {result.trials['fail']} failed. "
        f"Best trial: {params}; objective {result.best_value:.4f} (retain gap {terms['retain_gap']:.3f}, forget gap "
        f"{terms['forget_gap']:.3f}, val gap {terms['val_gap']:.3f}, forget W1 / R's forget MAE "
        f"{terms['forget_wasserstein']:.3f}), time / retraining {terms['time_ratio']:.3f}."
    )
    write_section(
        f"Tuning {args.method} with Optuna, {args.scope} scope, executor {args.executor} (issue 13)",
        body,
        f"bench/bench_tuning.py --data {args.data} --warm-cache CACHE --method {args.method} --scope {args.scope} "
        f"--trials {args.trials} --executor {args.executor}",
    )
    print(body)
    shutil.rmtree(cache)


if __name__ == "__main__":
    main()
