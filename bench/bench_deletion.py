"""Issue 14 benchmark: deletion requests on a deployed model, on real UTKFace (head scope), through the CLI.

1. ``olvido train original --export m0.olvido`` (M_O trained inside, not timed as a request);
2. three requests in a row, each a separate ``olvido forget`` process timed from start to exit (what an
   engineer waits for): 10 random train/val images, then 1, then 100, with the default method; then
   ``olvido ledger verify --model`` on the last model;
3. the same three requests with ``--verify`` (a model retrained without every deleted image), in a second
   folder with its own ledger: does the verdict agree with the retrained reference?
4. a planted canary, in the ``last`` scope (a head on the face-pretrained embeddings does not memorise faces:
   in a probe outside this script, 100 epochs at lr 3e-3 on the 100 images left their MAE at 4.0 years): a last-scope original fine-tuned on 200
   other random images (seed 1) until it memorises them, then asked to delete them (``--method none`` and
   the default method, with ``--verify``): the checks must find that the unchanged model remembers them.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_deletion.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import copy_warm_cache, write_section

SIZES = (10, 1, 100)
CANARY_EPOCHS, CANARY_LR, CANARY_SIZE, CANARY_SEED = 30, 1e-3, 200, 1


def olvido(cache: Path, *arguments: str) -> tuple[dict | str, float, int]:
    """Run the CLI in its own process; return (parsed JSON or text, seconds, exit code)."""
    command = [sys.executable, "-m", "olvido.cli", "-q", "--cache", str(cache), *arguments]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(arguments)} failed: {done.stderr.strip()}")
    text = done.stdout
    try:
        return json.loads(text), seconds, done.returncode
    except json.JSONDecodeError:
        return text.strip(), seconds, done.returncode


def requests(cache: Path, bundle: Path, folder: Path, seed: int = 0, sizes=SIZES) -> list[Path]:
    """Request files of random train/val originals (disjoint), of ``sizes`` images."""
    import pandas as pd

    from olvido.experiments.bundle import load_bundle

    manifest = load_bundle(bundle).meta["manifest"]
    table = pd.read_csv(cache / "manifests" / f"manifest-{manifest}.csv")
    originals = table[(table["split"] != "test") & (table["source_id"] == -1)]["file"].to_numpy()
    chosen = np.random.default_rng(seed).permutation(originals)
    paths, start = [], 0
    for number, size in enumerate(sizes, start=1):
        path = folder / f"request{number}-seed{seed}.txt"
        path.write_text("\n".join(chosen[start : start + size]) + "\n")
        paths.append(path)
        start += size
    return paths


def chain(cache: Path, root: Path, folder: Path, files: list[Path], extra: tuple[str, ...]) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    model, rows = root, []
    for number, request in enumerate(files, start=1):
        out = folder / f"m{number}.olvido"
        record, seconds, _ = olvido(cache, "forget", "--model", str(model), "--files", f"@{request}", "--out", str(out),
                                    "--ledger", str(folder / "ledger.sqlite3"), "--json", *extra)  # fmt: skip
        rows.append(_row(record, seconds))
        model = out
    verified, _, code = olvido(
        cache, "ledger", "--ledger", str(folder / "ledger.sqlite3"), "verify", "--model", str(model)
    )
    rows[-1]["ledger"] = f"exit {code}: {verified}"
    return rows


def _row(record: dict, seconds: float) -> dict:
    checks = record["audit"]["checks"]
    row = {
        "images": len(record["request"]["ids"]),
        "method": record["method"]["label"],
        "seconds": round(seconds, 1),
        "in-process seconds": record["seconds"]["total"],
        "verdict": record["audit"]["verdict"],
    }
    for name, values in checks.items():
        row[f"{name} deleted MAE"] = round(values["deleted_mae"], 2)
        row[f"{name} unseen same-age MAE"] = round(values["unseen_same_age_mae"], 2)
        row[f"{name} AUC (p)"] = f"{values['membership_auc']:.3f} ({values['membership_p']:.3f})"
    for name, values in record["audit"].get("against_retrained", {}).items():
        row[f"{name} F / W"] = f"{values['F']:.3f} / {values['wasserstein']:.2f}"
    return row


def canary(cache: Path, root: Path, folder: Path, request: Path, data: str) -> Path:
    """The original, fine-tuned on the request's images (``CANARY_EPOCHS`` at ``CANARY_LR``): a model that memorised
    them."""
    from dataclasses import replace

    from olvido.experiments.bundle import load_bundle, save_bundle
    from olvido.training import FitConfig, fit

    bundle = load_bundle(root)
    workspace = bundle.workspace(bundle.prepare(data, cache, False), cache, False)
    table = workspace.prepared.manifest.table
    ids = table[table["file"].isin(request.read_text().split())]["id"].to_numpy()
    model = bundle.trained_model(workspace)
    config = FitConfig(epochs=CANARY_EPOCHS, batch_size=32, lr=CANARY_LR, patience=None)
    for index, member in enumerate(model.members):
        fit(member, workspace.dataset(ids), None, replace(config, seed=index))
    lineage = {"parent": bundle.model_hash, "request_id": "canary", "generation": 0}
    method = {"name": "canary", "config": {"fine-tuned on": len(ids), "epochs": CANARY_EPOCHS}}
    child = bundle.child(workspace, model.eval(), {"ids": [], "files": [], "copies": []}, lineage, method)
    return save_bundle(child, folder / "canary.olvido")


def table(rows: list[dict]) -> str:
    header = list(dict.fromkeys(k for row in rows for k in row if k != "ledger"))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row.get(k, "-")) for k in header) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="olvido-bench-deletion-"))
    cache = work / "cache"
    copy_warm_cache(args.warm_cache, cache)
    root = work / "m0.olvido"
    exported, seconds, _ = olvido(cache, "train", "original", "--data", args.data, "--export", str(root), "--json")
    files = requests(cache, root, work)
    plain = chain(cache, root, work / "plain", files, ())
    verified = chain(cache, root, work / "verify", files, ("--verify",))
    last = work / "last0.olvido"
    olvido(cache, "train", "original", "--data", args.data, "--scope", "last", "--ensemble", "1", "--export", str(last))
    (canary_request,) = requests(cache, last, work, CANARY_SEED, (CANARY_SIZE,))
    planted = canary(cache, last, work, canary_request, args.data)
    canary_rows = []
    for method in ("none", "reset_distill"):
        folder = work / f"canary-{method}"
        folder.mkdir()
        record, took, _ = olvido(cache, "forget", "--model", str(planted), "--files", f"@{canary_request}", "--out",
                                 str(folder / "m1.olvido"), "--ledger", str(folder / "ledger.sqlite3"), "--json",
                                 "--method", method, "--verify")  # fmt: skip
        canary_rows.append(_row(record, took))
    for rows in (plain, verified, canary_rows):
        print(table(rows))
    body = (
        f"M_O (head scope, ensemble of 3, test MAE {exported['test_mae']:.2f}) exported in {seconds:.0f} s. Each "
        "request is one `olvido forget` process timed from start to exit (imports, data and cached features "
        "loaded, unlearning, checks, commit); `in-process seconds` is the library call alone. Random train/val "
        "images (seed 0), three requests in a row, each on the previous model. Checks: MAE on the deleted faces "
        "and on unseen test faces of the same ages, and the age-stratified membership attack (AUC, two-sided "
        "p-value; 0.5 = like unseen).\n\n"
        f"Without --verify (default method for the head scope):\n\n{table(plain)}\n\n"
        f"`olvido ledger verify --model m3.olvido`: {plain[-1]['ledger']}\n\n"
        f"With --verify (a model retrained without every deleted image; F and Wasserstein distance W against it):"
        f"\n\n{table(verified)}\n\n`olvido ledger verify --model m3.olvido`: {verified[-1]['ledger']}\n\n"
        f"Planted canary (last scope, one network): the last-scope original fine-tuned {CANARY_EPOCHS} epochs (lr "
        f"{CANARY_LR:g}) on {CANARY_SIZE} random train/val images (seed {CANARY_SEED}), then asked to delete them, "
        "keeping the weights (none) or with the last scope's default method, with --verify:"
        f"\n\n{table(canary_rows)}\n"
    )
    command = "TORCH_HOME=../shared/torch .venv/bin/python bench/bench_deletion.py --data DATA --warm-cache CACHE"
    write_section("Deletion requests on UTKFace, head scope (issue 14)", body, command)


if __name__ == "__main__":
    main()
