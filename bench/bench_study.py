"""Issue 4 benchmark: the whole thesis study (``olvido run``) timed per scope, report written to --out.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_study.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --scopes head,last --out docs/results --warm-cache ~/.cache/olvido

With --warm-cache, the face-pretrained backbone, decoded images and cached features are copied from that
cache into a fresh one first (the budget is "once the backbone and embeddings are cached"); trained
models and study cells are not copied, so every model of the study is really trained.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import write_section

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.experiments.runner import RunConfig, run_all

WARM_FOLDERS = ("images", "manifests", "backbones", "features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--scopes", default="head")
    parser.add_argument("--out", required=True)
    parser.add_argument("--warm-cache", default=None, help="copy backbone, images and features from this cache")
    parser.add_argument("--cache", default=None, help="cache to use (default: a fresh temporary folder)")
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="olvido-bench-study-"))
    had_backbone = any((cache / "backbones").glob("*.pt")) if (cache / "backbones").exists() else False
    if args.warm_cache:
        for folder in WARM_FOLDERS:
            if (Path(args.warm_cache) / folder).exists():
                shutil.copytree(Path(args.warm_cache) / folder, cache / folder, dirs_exist_ok=True)
    started = time.perf_counter()
    prepared = prepare_dataset(None if args.data == "synthetic" else args.data, ProtocolConfig(), cache=cache, progress=False)
    scopes = tuple(args.scopes.split(","))
    index, results = run_all(prepared, RunConfig(scopes=scopes), args.out, args.data, cache=cache, progress=False)
    total = time.perf_counter() - started
    rows = "\n".join(
        f"| {r.scope} | {r.model_summary['architecture']['ensemble']} | {r.seconds / 60:.1f} | "
        f"{', '.join(f'{m} {e}' for m, e in r.best_epochs.items())} |"
        for r in results
    )
    name = "synthetic" if args.data == "synthetic" else "UTKFace"
    body = f"""
Cache: {'face-pretrained backbone and decoded images already cached (features of a scope are extracted inside the timing when missing); the models and cells of the scopes above are all trained/computed in this run' if (args.warm_cache or had_backbone) else 'empty: face pretraining and feature extraction included'}.
Study: 3 seeds; epochs 2/4/8/16 on group 0 (FT, RND); all 5 groups at the best epochs; alpha sweep.

| scope | ensemble | minutes | best epochs (highest mean F) |
| --- | --- | --- | --- |
{rows}

Total including data preparation: {total / 60:.1f} min. Report: `{args.out}/index.md`.
"""
    write_section(f"Thesis study on {name}, {args.scopes} scope (issue 4)", body, f"bench/bench_study.py --data {args.data} --scopes {args.scopes} --out {args.out}" + (" --warm-cache CACHE" if args.warm_cache else ""))
    print(body)


if __name__ == "__main__":
    main()
