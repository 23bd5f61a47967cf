"""Issue 3 benchmark: face pretraining, feature extraction, M_O and every M_R^j on real UTKFace (head scope).

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_models.py --data ../shared/data/utkface/UTKFace.tar.gz

Uses a fresh cache folder (so pretraining and training really run) unless --cache is given.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from olvido.data import ProtocolConfig, parse_forget, prepare_dataset
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.models.features import run_frozen

from common import median, timed, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache", default=None, help="cache folder (default: a fresh temporary one)")
    args = parser.parse_args()
    cache = args.cache or tempfile.mkdtemp(prefix="olvido-bench-models-")
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
    ws = Workspace(prepared, ModelConfig(scope="head", ensemble=3), cache=cache, progress=False)

    start = time.perf_counter()
    report = ws.pretrain_report
    pretrain_wall = time.perf_counter() - start
    frozen = ws.parts[0]
    images = prepared.faces.images
    extraction = timed(lambda: run_frozen(frozen, images, progress=False), 3)
    _ = ws.inputs  # cache the manifest's features once (what training reads)

    originals, original_times = [], []
    for seed in (0, 1, 2):
        start = time.perf_counter()
        originals.append(ws.original(seed))
        original_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    retrained = [ws.retrained(parse_forget(prepared.manifest, f"group:{g}"), seed=0) for g in range(5)]
    retrain_total = time.perf_counter() - start
    evaluations = [ws.evaluate(o.model) for o in originals]
    retrained_eval = [ws.evaluate(r.model) for r in retrained]

    groups = list(evaluations[0]["test_mae_by_group"])
    o_mae = [e["test_mae"] for e in evaluations]
    per_group = {g: np.mean([e["test_mae_by_group"][g] for e in evaluations]) for g in groups}
    rows = "\n".join(
        f"| M_R^{j} (forget {g}), ensemble of 3, seed 0 | {retrained_eval[j]['test_mae']:.2f} | "
        + " | ".join(f"{retrained_eval[j]['test_mae_by_group'][h]:.2f}" for h in groups)
        + " |"
        for j, g in enumerate(groups)
    )
    body = f"""
MobileNetV2 (ImageNet weights), face-pretrained on the {report["pool"]} UTKFace images the protocol left
out, frozen; the thesis head trained on its cached 1280-d embeddings (`head` scope), ensembles of 3.
Threads: {torch.get_num_threads()}.

| step | measured | target |
| --- | --- | --- |
| one-time face pretraining ({report["train"]} train / {report["val"]} val images, 3 epochs) | {pretrain_wall / 60:.1f} min (val MAE {report["val_mae"]:.2f}; ages 20-60: {report["val_mae_20_60"]:.2f}) | <= 20 min |
| embedding extraction, all {len(images)} images (median of 3) | {median(extraction):.1f} s ({len(images) / median(extraction):.0f} images/s; runs {", ".join(f"{t:.1f}" for t in extraction)}) | <= 60 s |
| M_O, ensemble of 3 heads trained (median of seeds 0, 1, 2) | {median(original_times):.1f} s (runs {", ".join(f"{t:.1f}" for t in original_times)}) | <= 60 s |
| all five M_R^j, each an ensemble of 3 heads (15 heads) | {retrain_total / 60:.2f} min | <= 5 min |

Test MAE in years (test split, {evaluations[0]["test_size"]} images):

| model | all | {" | ".join(groups)} |
| --- | --- | {" | ".join("---" for _ in groups)} |
| M_O, ensemble of 3 (mean over seeds 0-2) | {np.mean(o_mae):.2f} (seeds: {", ".join(f"{m:.2f}" for m in o_mae)}) | {" | ".join(f"{per_group[g]:.2f}" for g in groups)} |
{rows}

Thesis (VGGFace2 ResNet50, 224 px, end to end): M_O 4.81, M_R^0 6.17. Target for M_O: <= 6.0.
"""
    write_section("Age models (issue 3)", body, "bench/bench_models.py --data ../shared/data/utkface/UTKFace.tar.gz")
    print(body)


if __name__ == "__main__":
    main()
