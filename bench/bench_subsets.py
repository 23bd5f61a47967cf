"""Issue 10 benchmark: importances (SSD, ASSD) and saliency (SalUn, GradMask) estimated on a fixed subset of
samples instead of every one, in the ``last`` scope: what the subset saves and what it changes.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_subsets.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE

Forget group 0, the thesis preset's ``last``-scope recipe, originals of seeds 0-2 (the study's; trained or
loaded from CACHE). SSD/ASSD, per setting: the median over the three originals of the unlearning seconds
and of seconds / the same seed's retraining seconds, and the means of Utility, Forgetting, F and the
Wasserstein distance to R, each computed against that seed's retrained model as in the study. Saliency:
seconds of the forget-set saliency on every sample and on the subset, and the overlap (intersection over
union) of the two top-fraction masks at each mask ratio of the knob.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from olvido.data import ProtocolConfig, prepare_dataset
from olvido.data.forget import forget_age_group
from olvido.methods.base import fixed_subset
from olvido.methods.saliency import SALIENCY_SAMPLES, SUBSET_SEED, saliency, top_fraction
from olvido.metrics import f_score, forgetting, mean_absolute_error, prediction_wasserstein, utility
from olvido.pipeline import RunConfig, workspace_for
from olvido.training import resolve_device

from common import write_section

# (label, max_samples per set, random-sign draws per set)
SETTINGS = (
    ("every sample", None, 100),
    ("1024 per set", 1024, 64),
    ("512 per set", 512, 32),
    ("384 per set", 384, 24),
)
METHODS = (("ssd", 2.5), ("assd", None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--group", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=args.cache, progress=False)
    ws = workspace_for(prepared, RunConfig.from_preset("thesis", ("last",)), "last", args.cache, progress=False)
    split = forget_age_group(prepared.manifest, args.group)
    test_ages, forget_ages = ws.ages(split.test), ws.ages(split.forget)
    references = {}
    for seed in seeds:
        retrained = ws.retrained(split, seed)
        references[seed] = (
            retrained.meta["seconds"],
            mean_absolute_error(test_ages, ws.predict(retrained.model, split.test)),
            ws.predict(retrained.model, split.forget),
        )
    rows = []
    for label, max_samples, draws in SETTINGS:
        for method, value in METHODS:
            cells = []
            for seed in seeds:
                original = ws.original(seed).model
                result = ws.unlearn(method, original, split, value, seed, max_samples=max_samples, draws=draws)
                retrain_seconds, reference_test_mae, reference_forget = references[seed]
                test_mae = mean_absolute_error(test_ages, ws.predict(result.model, split.test))
                forget = ws.predict(result.model, split.forget)
                u = utility(reference_test_mae, test_mae)
                fg = forgetting(forget_ages, forget, reference_forget, 15.0)
                cells.append(
                    (
                        result.seconds,
                        result.seconds / retrain_seconds,
                        u,
                        fg,
                        f_score(u, fg),
                        prediction_wasserstein(forget, reference_forget),
                    )
                )
            seconds, ratio, u, fg, f, w1 = zip(*cells)
            rows.append(
                f"| {method} | {'' if value is None else f'{value:g}'} | {label} | {draws} | "
                f"{statistics.median(seconds):.2f} | {statistics.median(ratio):.3f} | {np.mean(u):.3f} | "
                f"{np.mean(fg):.3f} | {np.mean(f):.3f} | {np.mean(w1):.2f} |"
            )
            print(rows[-1], flush=True)
    overlaps, device = [], resolve_device(ws.device)
    for seed in seeds:
        original, forget = ws.original(seed).model, ws.dataset(split.forget)
        began = time.perf_counter()
        full = saliency(original, forget, 64, device)
        middle = time.perf_counter()
        subset = saliency(original, fixed_subset(forget, SALIENCY_SAMPLES, SUBSET_SEED), 64, device)
        ended = time.perf_counter()
        row = [middle - began, ended - middle]
        for ratio in (0.1, 0.3, 0.5, 0.7):
            a, b = top_fraction(full, ratio), top_fraction(subset, ratio)
            both = sum(int((a[n] & b[n]).sum()) for n in a)
            either = sum(int((a[n] | b[n]).sum()) for n in a)
            row.append(both / either)
        overlaps.append(row)
        print(seed, [round(v, 3) for v in row], flush=True)
    overlaps = np.array(overlaps)
    retrain = statistics.median(r[0] for r in references.values())
    body = (
        f"Forget group {args.group}, `last` scope, originals of seeds {args.seeds}; retraining took "
        f"{retrain:.1f} s (median). Seconds and time / retraining: medians over the seeds; U, Fg, F, W1: "
        "means.\n\n| method | alpha | importances estimated on | draws per set | seconds | time / retrain | "
        "U | Fg | F | W1 to R |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + f"\n\nSaliency of the forget set ({len(split.forget)} images; SalUn and GradMask masks), on every sample "
        f"against a fixed subset of {SALIENCY_SAMPLES} (means over the originals):\n\n"
        "| seconds, every sample | seconds, subset | mask overlap (IoU) at 0.1 | at 0.3 | at 0.5 | at 0.7 |\n"
        "| --- | --- | --- | --- | --- | --- |\n| " + " | ".join(f"{v:.2f}" for v in overlaps.mean(axis=0)) + " |"
    )
    write_section(
        "Importances and saliency on a subset (issue 10)",
        body,
        f"bench/bench_subsets.py --data {args.data} --cache CACHE --group {args.group} --seeds {args.seeds}",
    )
    print(body)


if __name__ == "__main__":
    main()
