"""Issue 12 benchmark: SISA on real UTKFace. Test MAE for every S x R of a grid beside M_O's; the cost of
deletion scenarios (single random images, 10 and 100 random images, a gender and a race subset, age group
0) against retraining the whole SISA model and against retraining M_O; the exact reference of a group
deletion (a SISA model trained from scratch on what remains) and the monolithic M_R beside it; shards
trained with the local executor and with Ray.

    TORCH_HOME=../shared/torch .venv/bin/python bench/bench_sisa.py \
        --data ../shared/data/utkface/UTKFace.tar.gz --warm-cache CACHE --scopes head,last --out docs/results

Each scope gets a fresh cache holding only the face-pretrained backbone, decoded images and features (copied
from --warm-cache), so M_O, M_R and every SISA slice are trained inside the timings. Deletions are of
train-split originals (SISA never trains on validation or test images): the group, gender and race
scenarios delete the train part of their forget set. Every deletion starts from the full SISA model.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from olvido.data import ProtocolConfig, parse_forget, prepare_dataset  # noqa: E402
from olvido.data.forget import split_forget  # noqa: E402
from olvido.data.protocol import NOT_AUGMENTED  # noqa: E402
from olvido.executor import get_executor  # noqa: E402
from olvido.experiments.sisa import Sisa, SisaConfig  # noqa: E402
from olvido.experiments.workspace import ModelConfig, Workspace  # noqa: E402
from olvido.metrics import f_score, forgetting, mean_absolute_error, utility  # noqa: E402
from olvido.storage import atomic_write_text  # noqa: E402

from common import copy_warm_cache, write_section  # noqa: E402


def train_originals(ws: Workspace) -> np.ndarray:
    table = ws.prepared.manifest.table
    return table.loc[(table["split"] == "train") & (table["source_id"] == NOT_AUGMENTED), "id"].to_numpy()


def scenarios(ws: Workspace, singles: int, specs: list[str]) -> list[tuple[str, str, object]]:
    """(scenario, kind, forget split): ``singles`` one-image requests, then each spec's train part."""
    manifest, originals = ws.prepared.manifest, train_originals(ws)
    chosen = []
    for seed in range(singles):
        image = int(np.random.default_rng([12, seed]).choice(originals))
        chosen.append(("1 random image", "single", split_forget(manifest, np.array([image]), f"ids:{image}")))
    for spec in specs:
        kind, _, amount = spec.partition(":")
        if kind == "random":
            ids = np.random.default_rng([12, int(amount)]).choice(originals, size=int(amount), replace=False)
            name = f"{amount} random images"
        else:
            ids = np.intersect1d(parse_forget(manifest, spec).forget, originals)
            name = f"{spec} (train part)"
        chosen.append((name, spec, split_forget(manifest, ids, f"{spec}, train originals")))
    return chosen


def parse_grid(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in cell.split("x")) for cell in text.split(",")]


def run_scope(args, scope: str) -> dict:
    cache = Path(tempfile.mkdtemp(prefix=f"olvido-bench-sisa-{scope}-"))
    copy_warm_cache(args.warm_cache, cache)
    prepared = prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)
    ws = Workspace(prepared, ModelConfig(scope=scope, init=args.init), cache=cache, progress=False)
    _ = ws.inputs  # cached features, loaded outside the timings
    test = ws.split_ids("test")
    original = ws.original(0)
    m_o = {"test_mae": ws.evaluate(original.model)["test_mae"], "seconds": original.meta["seconds"]}
    print(scope, "M_O", m_o, flush=True)

    grid = []
    main_shards, main_slices = parse_grid(args.main)[0]
    with get_executor("local", progress=False) as local:
        for shards, slices in parse_grid(args.grid):
            sisa = Sisa(ws, SisaConfig(shards, slices, args.epochs), local)
            full = sisa.train()
            grid.append(
                {
                    "scope": scope,
                    "S": shards,
                    "R": slices,
                    "test_mae": ws.evaluate(full.model)["test_mae"],
                    "train_seconds": full.seconds,
                    "M_O_test_mae": m_o["test_mae"],
                }
            )
            print(grid[-1], flush=True)

        sisa = Sisa(ws, SisaConfig(main_shards, main_slices, args.epochs), local)
        full = sisa.train()  # from the cache: the grid trained it
        full_seconds = next(g["train_seconds"] for g in grid if (g["S"], g["R"]) == (main_shards, main_slices))
        full_test = ws.predict(full.model, test)
        deletions = []
        group_models = {}
        for name, kind, split in scenarios(ws, args.singles, args.scenarios.split(",")):
            started = time.perf_counter()
            after = sisa.forget(split)
            wall = time.perf_counter() - started
            test_mae = ws.evaluate(after.model)["test_mae"]
            deletions.append(
                {
                    "scope": scope,
                    "scenario": name,
                    "images": len(split.forget),
                    "trained_slices": after.trained_slices,
                    "total_slices": after.total_slices,
                    "fraction_passes": after.fraction,
                    "seconds": after.seconds,
                    "wall_seconds": wall,
                    "fraction_time": after.seconds / full_seconds,
                    "speedup_vs_sisa": full_seconds / max(after.seconds, 1e-9),
                    "speedup_vs_M_O": m_o["seconds"] / max(after.seconds, 1e-9),
                    "test_mae": test_mae,
                    "forget_mae_before": mean_absolute_error(
                        ws.ages(split.forget), ws.predict(full.model, split.forget)
                    ),
                    "forget_mae_after": mean_absolute_error(
                        ws.ages(split.forget), ws.predict(after.model, split.forget)
                    ),
                }
            )
            print(deletions[-1], flush=True)
            if kind == "group:0":
                group_models = {"split": split, "after": after, "test_mae": test_mae}

        reference = None
        if group_models:
            # The exact counterpart: a SISA model trained from scratch on the remaining images, and the
            # monolithic M_R (retrained without the whole forget group, validation part included).
            split = group_models["split"]
            scratch = Sisa(ws, sisa.config, local, store=cache / "sisa-scratch").fit(split.retain_train)
            forget_ages = ws.ages(split.forget)
            after_forget = ws.predict(group_models["after"].model, split.forget)
            scratch_forget = ws.predict(scratch.model, split.forget)
            after_test_mae = group_models["test_mae"]
            scratch_test_mae = ws.evaluate(scratch.model)["test_mae"]
            retrained = ws.retrained(parse_forget(prepared.manifest, "group:0"), seed=0)
            r_forget = ws.predict(retrained.model, split.forget)
            r_test_mae = ws.evaluate(retrained.model)["test_mae"]
            u_sisa = utility(scratch_test_mae, after_test_mae)
            fg_sisa = forgetting(forget_ages, after_forget, scratch_forget)
            u_mono = utility(r_test_mae, after_test_mae)
            fg_mono = forgetting(forget_ages, after_forget, r_forget)
            reference = {
                "max_prediction_difference": float(
                    max(
                        np.abs(ws.predict(group_models["after"].model, test) - ws.predict(scratch.model, test)).max(),
                        np.abs(after_forget - scratch_forget).max(),
                    )
                ),
                "after_test_mae": after_test_mae,
                "scratch_test_mae": scratch_test_mae,
                "scratch_seconds": scratch.seconds,
                "M_R_test_mae": r_test_mae,
                "M_R_seconds": retrained.meta["seconds"],
                "U_F_vs_scratch": (u_sisa, fg_sisa, f_score(u_sisa, fg_sisa)),
                "U_F_vs_M_R": (u_mono, fg_mono, f_score(u_mono, fg_mono)),
                "forget_mae": (
                    mean_absolute_error(forget_ages, after_forget),
                    mean_absolute_error(forget_ages, r_forget),
                ),
            }
            print(reference, flush=True)

    executors = {}
    for name in args.executors.split(","):
        with get_executor(name, progress=False) as executor:
            sisa = Sisa(ws, SisaConfig(main_shards, main_slices, args.epochs), executor, store=cache / f"sisa-{name}")
            started = time.perf_counter()
            trained = sisa.train()
            executors[name] = {
                "wall_seconds": time.perf_counter() - started,
                "max_difference_to_local": float(np.abs(ws.predict(trained.model, test) - full_test).max()),
            }
            print(name, executors[name], flush=True)
    shutil.rmtree(cache)
    return {
        "scope": scope,
        "M_O": m_o,
        "grid": grid,
        "deletions": deletions,
        "reference": reference,
        "executors": executors,
        "expected": SisaConfig(main_shards, main_slices).expected_deletion_fraction(),
        "full_seconds": full_seconds,
        "train_size": len(ws.split_ids("train")),
    }


def plot(results: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        grid = pd.DataFrame(result["grid"])
        for slices, cells in grid.groupby("R"):
            row[0].plot(cells["S"], cells["test_mae"], marker="o", label=f"SISA, R = {slices}")
        row[0].axhline(result["M_O"]["test_mae"], color="black", linestyle="--", label="M_O")
        row[0].set_xscale("log", base=2)
        row[0].set_xlabel("shards S")
        row[0].set_ylabel("test MAE (years)")
        row[0].set_title(f"{result['scope']} scope: accuracy")
        row[0].legend()
        deletions = pd.DataFrame(result["deletions"])
        summary = deletions.groupby("scenario", sort=False)["fraction_time"].agg(["median", "min", "max"])
        positions = np.arange(len(summary))
        row[1].bar(positions, summary["median"], color="tab:blue", label="measured (median)")
        row[1].errorbar(
            positions,
            summary["median"],
            yerr=[summary["median"] - summary["min"], summary["max"] - summary["median"]],
            fmt="none",
            color="black",
        )
        row[1].axhline(result["expected"], color="tab:red", linestyle="--", label="expected, one image (2R+1)/(3RS)")
        m_o_share = result["M_O"]["seconds"] / result["full_seconds"]
        row[1].axhline(m_o_share, color="black", linestyle=":", label="retraining M_O")
        row[1].set_xticks(positions, summary.index, rotation=25, ha="right")
        row[1].set_ylabel("time / full SISA retrain")
        row[1].set_title(f"{result['scope']} scope: deletion cost, S = 4, R = 4")
        row[1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(result: dict, main: str, epochs: int) -> str:
    scope, m_o = result["scope"], result["M_O"]
    grid = pd.DataFrame(result["grid"])
    table = grid.pivot(index="S", columns="R", values="test_mae")
    lines = [
        f"### {scope} scope",
        "",
        f"M_O (ensemble of 3, early stopping): test MAE {m_o['test_mae']:.2f}, trained in {m_o['seconds']:.1f} s. "
        f"Train split: {result['train_size']} rows (originals and augmented copies).",
        "",
        f"Test MAE of the SISA model (mean of the shard models, clipped), e = {epochs} sample-passes per shard:",
        "",
        "| S | "
        + " | ".join(f"R = {r}" for r in table.columns)
        + " | minus M_O (R = "
        + str(table.columns[-1])
        + ") |",
        "| --- | " + " | ".join("---" for _ in table.columns) + " | --- |",
    ]
    for shards, values in table.iterrows():
        lines.append(
            f"| {shards} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {values.iloc[-1] - m_o['test_mae']:+.2f} |"
        )
    seconds = grid.pivot(index="S", columns="R", values="train_seconds")
    lines += [
        "",
        "Full SISA training time (s, local executor): "
        + "; ".join(
            f"S = {s}: " + ", ".join(f"R = {r} {v:.0f}" for r, v in row.items()) for s, row in seconds.iterrows()
        ),
        "",
        f"Deletions from the full S x R = {main} model (full retrain {result['full_seconds']:.1f} s); expected share "
        f"for one image (2R+1)/(3RS) = {result['expected']:.3f}:",
        "",
        "| scenario | images | slices retrained | share of sample-passes | seconds | share of time | speed-up vs "
        "SISA retrain | speed-up vs M_O retrain | test MAE after | forget MAE before -> after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    deletions = pd.DataFrame(result["deletions"])
    for scenario, rows in deletions.groupby("scenario", sort=False):
        if len(rows) > 1:
            lines.append(
                f"| {scenario} (median of {len(rows)}; min-max) | 1 | "
                f"{rows['trained_slices'].median():.1f} ({rows['trained_slices'].min()}-{rows['trained_slices'].max()}) "
                f"of {rows['total_slices'].iloc[0]} | {rows['fraction_passes'].median():.3f} (mean {rows['fraction_passes'].mean():.3f}) | "
                f"{rows['seconds'].median():.1f} | {rows['fraction_time'].median():.3f} (mean {rows['fraction_time'].mean():.3f}; "
                f"{rows['fraction_time'].min():.3f}-{rows['fraction_time'].max():.3f}) | "
                f"{rows['speedup_vs_sisa'].median():.1f}x | {rows['speedup_vs_M_O'].median():.1f}x | "
                f"{rows['test_mae'].median():.2f} | {rows['forget_mae_before'].median():.2f} -> {rows['forget_mae_after'].median():.2f} |"
            )
        else:
            row = rows.iloc[0]
            lines.append(
                f"| {scenario} | {row['images']} | {row['trained_slices']} of {row['total_slices']} | "
                f"{row['fraction_passes']:.3f} | {row['seconds']:.1f} | {row['fraction_time']:.3f} | "
                f"{row['speedup_vs_sisa']:.1f}x | {row['speedup_vs_M_O']:.1f}x | {row['test_mae']:.2f} | "
                f"{row['forget_mae_before']:.2f} -> {row['forget_mae_after']:.2f} |"
            )
    reference = result["reference"]
    if reference:
        (u_s, fg_s, f_s), (u_m, fg_m, f_m) = reference["U_F_vs_scratch"], reference["U_F_vs_M_R"]
        lines += [
            "",
            f"Group 0 deletion against its references: largest difference between the SISA model after the "
            f"deletion and a SISA model trained from scratch on the remaining images, over test and forget "
            f"predictions: {reference['max_prediction_difference']:.2g} years (the scratch model took "
            f"{reference['scratch_seconds']:.1f} s). Thesis metrics of SISA-after-deletion against that exact "
            f"reference: U {u_s:.3f}, Fg {fg_s:.3f}, F {f_s:.3f}; against the monolithic M_R (test MAE "
            f"{reference['M_R_test_mae']:.2f}, {reference['M_R_seconds']:.1f} s): U {u_m:.3f}, Fg {fg_m:.3f}, "
            f"F {f_m:.3f}. Forget-set MAE: SISA after deletion {reference['forget_mae'][0]:.2f}, M_R "
            f"{reference['forget_mae'][1]:.2f}.",
        ]
    if result["executors"]:
        base = result["executors"].get("local", {}).get("wall_seconds")
        lines += [
            "",
            f"Training the {main} SISA model from scratch (shards as executor jobs; the executor already started):",
            "",
            "| executor | seconds | speed-up over local | largest test-prediction difference to the grid's model |",
            "| --- | --- | --- | --- |",
        ]
        for name, run in result["executors"].items():
            speedup = f"{base / run['wall_seconds']:.2f}x" if base else "-"
            lines.append(f"| {name} | {run['wall_seconds']:.1f} | {speedup} | {run['max_difference_to_local']:.2g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm-cache", required=True)
    parser.add_argument("--scopes", default="head,last")
    parser.add_argument("--grid", default="1x1,2x1,4x1,8x1,1x4,2x4,4x4,8x4", help="SxR cells")
    parser.add_argument("--main", default="4x4", help="the SxR model the deletions and executors are timed on")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--singles", type=int, default=12, help="single-image deletions (each a random train image)")
    parser.add_argument("--scenarios", default="random:10,random:100,gender:1,race:2,group:0")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--init", default="face", help="backbone start (face: the study's; imagenet: smoke runs)")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    started = time.perf_counter()
    results = [run_scope(args, scope.strip()) for scope in args.scopes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "sisa.png")
    atomic_write_text(out / "sisa_grid.csv", pd.DataFrame([g for r in results for g in r["grid"]]).to_csv(index=False))
    atomic_write_text(
        out / "sisa_deletions.csv", pd.DataFrame([d for r in results for d in r["deletions"]]).to_csv(index=False)
    )
    body = (
        f"Total run {(time.perf_counter() - started) / 60:.1f} min. Plot: `{out / 'sisa.png'}`; tables: "
        f"`{out / 'sisa_grid.csv'}`, `{out / 'sisa_deletions.csv'}`. Seconds are training time of the slices "
        "retrained (local executor, this process's two threads); shares are of the full SISA training's time "
        "(and of its sample-passes).\n\n" + "\n\n".join(markdown(r, args.main, args.epochs) for r in results)
    )
    write_section(
        "SISA on UTKFace (issue 12)",
        body,
        f"bench/bench_sisa.py --data {args.data} --warm-cache CACHE --scopes {args.scopes} --grid {args.grid} "
        f"--main {args.main} --singles {args.singles} --scenarios {args.scenarios} --executors {args.executors}",
    )
    print(body)


if __name__ == "__main__":
    main()
