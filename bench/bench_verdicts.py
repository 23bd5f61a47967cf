"""Issue 5 benchmark: the full verdicts of O, FT and RND on UTKFace group 0, head scope, K = 32.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_verdicts.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE --epochs finetune=2,random_labels=2

The cache should hold the face-pretrained backbone and features (models are trained if missing). The
first evaluation (O, FT and the perfect-forget row) trains everything it needs: K originals, 2K
retrained models, the shadows and K FT runs; RND then only adds its K runs.
"""

from __future__ import annotations

import argparse
import json
import time

from common import write_section

from olvido.data import ProtocolConfig, parse_forget, prepare_dataset
from olvido.experiments.verdicts import VerdictConfig, Verdicts
from olvido.experiments.workspace import ModelConfig, Workspace

COLUMNS = [
    ("model", "model"), ("epochs", "epochs"), ("forgetting", "Fg"), ("utility", "U"), ("mia_logistic_acc", "MIA-LR"),
    ("mia_logistic_acc_retrained", "MIA-LR (R)"), ("mia_svc_acc", "MIA-SVC"), ("mia_svc_acc_retrained", "MIA-SVC (R)"),
    ("lira_auc", "LiRA AUC"), ("lira_auc_retrained", "LiRA (R)"), ("wasserstein", "W1"), ("relearn_epochs", "relearn"),
    ("relearn_epochs_retrained", "relearn (R)"), ("forget_score_prediction", "forget score"),
    ("forget_score_neg_abs_error", "score -|err|"), ("final_score_prediction", "final"), ("evaluation_seconds", "eval s"),
]


def cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--epochs", default="finetune=2,random_labels=2")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--shadows", type=int, default=16)
    args = parser.parse_args()
    epochs = {m: int(e) for m, e in (part.split("=") for part in args.epochs.split(","))}
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=args.cache, progress=False)
    ws = Workspace(prepared, ModelConfig(scope="head"), cache=args.cache, progress=False)
    split = parse_forget(prepared.manifest, "group:0")
    verdicts = Verdicts(ws, split, VerdictConfig(k=args.k, shadows=args.shadows), progress=False)
    methods = list(epochs)
    start = time.perf_counter()
    rows = verdicts.evaluate({methods[0]: epochs[methods[0]]})
    first = time.perf_counter() - start
    start = time.perf_counter()
    more = verdicts.evaluate({m: epochs[m] for m in methods[1:]})
    second = time.perf_counter() - start
    rows = rows[:2] + [r for r in more if r["model"] in methods[1:]] + rows[2:]
    table = "| " + " | ".join(t for _, t in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    table += "\n".join("| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows)
    body = f"""
Forget group 0 (20-28, {len(split.forget)} images), non-members: {len(verdicts.nonmembers)} test images aged
20-28. Single networks, head scope; K = {args.k} models per side (unlearning: one original, K seeds;
O: K originals), {args.shadows} LiRA shadows. Methods at the study's best epochs ({args.epochs}).

| evaluation | wall time | target |
| --- | --- | --- |
| O + {methods[0]} + perfect-forget row, from an empty model cache (trains K originals, 2K retrained, {args.shadows} shadows, K {methods[0]} runs) | {first / 60:.1f} min | one method <= 10 min |
| + {', '.join(methods[1:])} (K more runs; everything else cached) | {second / 60:.1f} min | - |

{table}
"""
    write_section("Verdicts on UTKFace group 0 (issue 5)", body, f"bench/bench_verdicts.py --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE --epochs {args.epochs}")
    print(body)
    print(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
