"""Issue 5 benchmark: the full verdicts of O, FT and RND on UTKFace group 0, head scope, K = 32.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_verdicts.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE --epochs finetune=2,random_labels=2

Give a cache holding only the face-pretrained backbone, images and features, so every model is trained
inside the timings: first the shared references (R, O, K retrained models, the shadows), then each row.
"""

from __future__ import annotations

import argparse
import json
import time

from olvido.data import ProtocolConfig, parse_forget, prepare_dataset
from olvido.experiments.verdicts import VerdictConfig, Verdicts
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.report.study_report import neurips_table

from common import write_section

COLUMNS = [
    ("model", "model"),
    ("epochs", "epochs"),
    ("forgetting", "Fg"),
    ("utility", "U"),
    ("mia_logistic_acc", "MIA-LR"),
    ("mia_logistic_acc_retrained", "MIA-LR (R)"),
    ("mia_svc_acc", "MIA-SVC"),
    ("mia_svc_acc_retrained", "MIA-SVC (R)"),
    ("lira_auc", "LiRA AUC"),
    ("lira_auc_retrained", "LiRA (R)"),
    ("wasserstein", "W1"),
    ("relearn_epochs", "relearn"),
    ("relearn_epochs_retrained", "relearn (R)"),
    ("evaluation_seconds", "eval s"),
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
    _ = ws.inputs  # features extracted (or loaded) outside the timings
    reference_seconds = verdicts.prepare_references()
    timed_rows = []
    for label, kwargs in (
        (
            f"{methods[0]} row (its K runs + every measure)",
            dict(methods={methods[0]: epochs[methods[0]]}, with_original=False, with_sanity=False),
        ),
        ("O row (K originals + every measure)", dict(methods={}, with_original=True, with_sanity=False)),
        *[(f"{m} row", dict(methods={m: epochs[m]}, with_original=False, with_sanity=False)) for m in methods[1:]],
        (
            "perfect-forget row (K more retrained + every measure)",
            dict(methods={}, with_original=False, with_sanity=True),
        ),
    ):
        start = time.perf_counter()
        produced = verdicts.evaluate(**kwargs)
        timed_rows.append((label, time.perf_counter() - start, produced))
    rows = [timed_rows[1][2][0], timed_rows[0][2][0], *[r[2][0] for r in timed_rows[2:]]]
    one_method = reference_seconds + timed_rows[0][1]
    table = "| " + " | ".join(t for _, t in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    table += "\n".join("| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows)
    steps = "\n".join(f"| {label} | {seconds / 60:.1f} min |" for label, seconds, _ in timed_rows)
    body = f"""
Forget group 0 (20-28, {len(split.forget)} images), non-members: {len(verdicts.nonmembers)} test images aged
20-28. Single networks, head scope; K = {args.k} models per side (unlearning: one original, K seeds;
O: K originals), {args.shadows} LiRA shadows. Methods at the study's best epochs ({args.epochs}).

| evaluation step (from an empty model cache) | wall time |
| --- | --- |
| shared references: O, R, K = {args.k} retrained models, {args.shadows} shadows | {reference_seconds / 60:.1f} min |
{steps}
| **full evaluation of one method ({methods[0]}): references + its row** (target <= 10 min) | **{one_method / 60:.1f} min** |

{table}

NeurIPS forget score (prediction; [95% bootstrap interval]):

{neurips_table(verdicts.neurips)}
"""
    write_section(
        "Verdicts on UTKFace group 0 (issue 5)",
        body,
        f"bench/bench_verdicts.py --data ../shared/data/utkface/UTKFace.tar.gz --cache CACHE --epochs {args.epochs}",
    )
    print(body)
    print(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
