"""``olvido`` command line: a thin layer that parses options, calls the library and prints results."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from olvido.storage import OlvidoError

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return value


def _add_data_options(parser: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    parser.add_argument(
        "--data",
        help="UTKFace folder or .tar/.tar.gz archive; 'synthetic' or 'synthetic:N' (default) for generated faces",
    )
    parser.add_argument(seed_flag, dest="data_seed", type=_non_negative_int, default=0, help="data protocol seed (default 0)")
    parser.add_argument("--image-size", type=_positive_int, default=64, help="square image side in pixels (default 64)")
    parser.add_argument(
        "--quality-filter", action="store_true", help="drop blurred/low-contrast images (off by default)"
    )


def _warn_skipped(summary: dict) -> None:
    if summary["skipped"]:
        counts = ", ".join(f"{n} {reason}" for reason, n in summary["skipped"].items())
        examples = [name for names in summary["skipped_files"].values() for name in names][:3]
        print(f"olvido: warning: skipped {counts} (e.g. {', '.join(examples)})", file=sys.stderr)


def _print_prepare(summary: dict) -> None:
    counts = summary["counts"]
    source = summary["source"]
    print(f"source        {source['kind']} {source['path'] or ''} ({source['image_size']} px)".rstrip())
    skipped = ", ".join(f"{n} {r}" for r, n in summary["skipped"].items()) or "none"
    print(f"images read   {summary['images_read']}   skipped: {skipped}")
    print(
        f"protocol      reduced {counts['reduced']} -> ages {summary['protocol']['age_min']}-"
        f"{summary['protocol']['age_max']} {counts['age_filtered']} -> quality filter removed "
        f"{counts['quality_removed']} -> kept {counts['kept']}"
    )
    print(
        f"splits        train {counts['train']} ({counts['train_original']} originals + "
        f"{counts['train_augmented']} augmented), val {counts['val']}, test {counts['test']}"
    )
    print("forget group  ages    forget (train+val)  augmented copies removed  retain train/val")
    for group in summary["forget_groups"]:
        print(
            f"  {group['group']}           {group['ages']:<7} {group['forget']:>6} ({group['forget_train']}+"
            f"{group['forget_val']})  {group['removed_augmented_copies']:>10}"
            f"                {group['retain_train']}/{group['retain_val']}"
        )
    histogram = summary["age_histogram"]
    peak = max(histogram.values())
    print("ages (kept originals)")
    for age, count in histogram.items():
        print(f"  {age:>3} {count:>5} {'#' * max(1, round(40 * count / peak))}")
    print(f"manifest      {summary['manifest']['hash']}  {summary['manifest']['path']}")


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from olvido.data import ProtocolConfig, prepare_dataset, summarize

    config = ProtocolConfig(seed=args.data_seed, quality_filter=args.quality_filter)
    prepared = prepare_dataset(args.data, config, image_size=args.image_size, cache=args.cache, progress=not args.quiet)
    summary = summarize(prepared, args.data)
    _warn_skipped(summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_prepare(summary)
    return 0


def _add_model_options(parser: argparse.ArgumentParser, with_scope: bool = True) -> None:
    _add_data_options(parser, seed_flag="--data-seed")
    parser.add_argument("--backbone", default="mobilenet_v2", help="torchvision backbone name (default mobilenet_v2)")
    parser.add_argument(
        "--init", default="face",
        help="backbone weights: face (ImageNet, then pretrained on the faces the protocol left out; default), "
        "imagenet, none, or a checkpoint path",
    )
    if with_scope:
        parser.add_argument("--scope", choices=["head", "last", "all"], default="head", help="what trains (default head)")
    parser.add_argument(
        "--ensemble", type=_positive_int, default=None,
        help="models averaged (default 3, as the thesis; 1 for the last and all scopes in run/experiment)",
    )
    parser.add_argument("--pretrain-epochs", type=_positive_int, default=None, help="face pretraining epochs (default 3; quick preset 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _workspace(args: argparse.Namespace):
    from olvido.experiments.workspace import ModelConfig, Workspace
    from olvido.models.pretrain import PretrainConfig

    prepared = _prepared(args)
    model = ModelConfig(backbone=args.backbone, init=args.init, scope=args.scope, ensemble=args.ensemble or 3)
    pretrain = PretrainConfig(backbone=args.backbone, epochs=args.pretrain_epochs or 3)
    return Workspace(prepared, model, pretrain_config=pretrain, cache=args.cache, progress=not args.quiet, device=args.device)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_short(v)}" for k, v in value.items())
        print(f"{key:<18} {_short(value)}")


def _short(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cmd_pretrain(args: argparse.Namespace) -> int:
    import time

    started = time.perf_counter()
    workspace = _workspace(args)
    if args.init != "face":
        raise OlvidoError(f"--init {args.init}: pretraining starts from ImageNet weights; use --init face")
    report = {k: v for k, v in workspace.pretrain_report.items() if k != "history"}
    path = workspace.backbone_source[0]
    _emit({"checkpoint": path, **report, "total_seconds": round(time.perf_counter() - started, 1)}, args.json)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from olvido.data import parse_forget

    started = time.perf_counter()
    workspace = _workspace(args)
    if args.role == "original":
        forget, trained = None, workspace.original(seed=args.seed)
    else:
        forget = parse_forget(workspace.prepared.manifest, args.forget)
        trained = workspace.retrained(forget, seed=args.seed)
    result = {
        "role": args.role,
        "seed": args.seed,
        "manifest": workspace.prepared.manifest.hash,
        "forget": None if forget is None else forget.summary(),
        **workspace.evaluate(trained.model),
        "members": trained.meta["members"],
        "train_seconds": trained.meta["seconds"],
        "from_cache": trained.from_cache,
        "checkpoint": str(trained.path),
        "log": str(trained.path.with_suffix(".log.jsonl")),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    _emit(result, args.json)
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers such as 2,4,8,16") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers >= 0")
    return values


def _best_epochs(text: str) -> dict[str, int]:
    try:
        pairs = dict(part.split("=") for part in text.split(","))
        return {method.strip(): int(epochs) for method, epochs in pairs.items()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected METHOD=EPOCHS pairs such as finetune=8,random_labels=2") from None


def _add_study_options(parser: argparse.ArgumentParser, with_scope: bool = True) -> None:
    _add_model_options(parser, with_scope)
    parser.add_argument(
        "--preset", choices=["thesis", "quick"], default="thesis",
        help="thesis (default): 3 seeds, ensembles of 3, K=32, 16 shadows; quick: 2 seeds, single networks, 1 pretraining "
        "epoch, single-model verdicts only (K=0, no shadows): the whole pipeline in about 3 minutes",
    )
    parser.add_argument("--seeds", type=_positive_int, default=None, help="runs per cell, seeds 0..N-1 (default 3; quick 2)")
    parser.add_argument("--groups", type=_int_list, default=(0, 1, 2, 3, 4), help="forget groups (default 0,1,2,3,4)")
    parser.add_argument("--epochs", type=_int_list, default=(2, 4, 8, 16), help="epoch counts to sweep (default 2,4,8,16)")
    parser.add_argument(
        "--methods", default="finetune,random_labels", help="unlearning methods (default finetune,random_labels)"
    )
    parser.add_argument(
        "--best-epochs", type=_best_epochs, default=None,
        help="epochs per method for the groups and alpha experiments (default: highest mean F in the epochs sweep)",
    )


def _run_config(args: argparse.Namespace, scopes: tuple[str, ...]):
    from olvido.experiments.runner import RunConfig
    from olvido.experiments.study import StudyConfig
    from olvido.experiments.verdicts import VerdictConfig
    from olvido.experiments.workspace import ModelConfig
    from olvido.models.pretrain import PretrainConfig

    if any(group > 4 for group in args.groups):
        raise OlvidoError(f"--groups {args.groups}: expected groups 0..4")
    quick = args.preset == "quick"
    seeds = args.seeds or (2 if quick else 3)
    ensemble = args.ensemble or (1 if quick else 3)
    study = StudyConfig(
        seeds=tuple(range(seeds)), groups=args.groups, epochs=args.epochs,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), best_epochs=args.best_epochs,
    )
    model = ModelConfig(backbone=args.backbone, init=args.init, ensemble=ensemble)
    ensemble_by_scope = () if (args.ensemble or quick) else RunConfig.ensemble_by_scope
    k = args.verdict_k if args.verdict_k is not None else (0 if quick else 32)
    shadows = args.shadows if args.shadows is not None else (0 if quick else 16)
    verdicts = None if args.no_verdicts else VerdictConfig(k=k, shadows=shadows)
    explicit = args.no_verdicts or args.verdict_k is not None or args.shadows is not None
    verdicts_by_scope = () if explicit else RunConfig.verdicts_by_scope
    return RunConfig(
        scopes=scopes, study=study, model=model, ensemble_by_scope=ensemble_by_scope, verdicts=verdicts,
        verdicts_by_scope=verdicts_by_scope,
        pretrain=PretrainConfig(backbone=args.backbone, epochs=args.pretrain_epochs or (1 if quick else 3)),
    )


def _prepared(args: argparse.Namespace):
    from olvido.data import ProtocolConfig, prepare_dataset

    config = ProtocolConfig(seed=args.data_seed, quality_filter=args.quality_filter)
    return prepare_dataset(args.data, config, image_size=args.image_size, cache=args.cache, progress=not args.quiet)


def cmd_run(args: argparse.Namespace) -> int:
    from olvido.experiments.runner import run_all

    scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    for scope in scopes:
        if scope not in ("head", "last", "all"):
            raise OlvidoError(f"--scopes {args.scopes}: expected a comma-separated list of head, last, all")
    config = _run_config(args, scopes)
    prepared = _prepared(args)
    index, results = run_all(prepared, config, args.out, args.data or "synthetic", args.cache, not args.quiet, args.device)
    summary = {r.scope: {"minutes": round(r.seconds / 60, 2), "best_epochs": r.best_epochs} for r in results}
    if args.json:
        print(json.dumps({"report": str(index), "scopes": summary}, indent=2))
    else:
        for scope, info in summary.items():
            print(f"scope {scope}: {info['minutes']} min, best epochs {info['best_epochs']}")
        print(f"report: {index}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from olvido.experiments.runner import workspace_for
    from olvido.experiments.study import Study

    config = _run_config(args, (args.scope,))
    workspace = workspace_for(_prepared(args), config, args.scope, args.cache, not args.quiet, args.device)
    study = Study(workspace, config.study, progress=not args.quiet)
    if args.experiment == "epochs":
        table = study.run_epochs()
        columns = ["method", "epochs", "seed", "utility", "test_mae", "forgetting", "F", "seconds", "time_ratio"]
    elif args.experiment == "groups":
        table = study.run_groups()
        columns = ["group", "method", "epochs", "seed", "utility", "forgetting", "F", "test_mae", "seconds"]
    else:
        table = study.run_alpha()
        columns = ["alpha", "method", "epochs", "seed", "forgetting"]
    if args.json:
        print(table[columns].to_json(orient="records", indent=2))
    else:
        print(table[columns].to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table[columns].to_string(index=False))
    return 0


VERDICT_COLUMNS = (
    "model", "epochs", "test_mae", "utility", "forgetting", "F", "mia_logistic_acc", "mia_logistic_acc_retrained",
    "mia_svc_acc", "mia_svc_acc_retrained", "lira_auc", "lira_auc_retrained", "wasserstein", "relearn_epochs",
    "relearn_epochs_retrained", "forget_score_prediction", "forget_score_neg_abs_error", "final_score_prediction", "seconds",
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from olvido.data import parse_forget
    from olvido.experiments.verdicts import VerdictConfig, Verdicts, feature_injection, interclass_confusion

    started = time.perf_counter()
    workspace = _workspace(args)
    split = parse_forget(workspace.prepared.manifest, args.forget)
    methods = {m.strip(): (args.best_epochs or {}).get(m.strip()) for m in args.methods.split(",") if m.strip()}
    config = VerdictConfig(k=args.k, shadows=args.shadows, seed=args.seed)
    verdicts = Verdicts(workspace, split, config, progress=not args.quiet)
    if args.model:
        reference, original = verdicts.retrained(0), verdicts.original(0)
        model = verdicts.ws.load(args.model).model
        rows = [{"model": args.model, "epochs": None, "seconds": None, **verdicts.measure(model, reference, original)}]
    else:
        rows = verdicts.evaluate(methods)
    from dataclasses import asdict

    result = {"forget": split.summary(), "nonmembers": len(verdicts.nonmembers), "config": asdict(config), "rows": rows}
    tests = {t.strip() for t in args.tests.split(",") if t.strip()}
    if "ic" in tests:
        result["interclass_confusion"] = interclass_confusion(workspace, methods=methods, seed=args.seed)
    if "fi" in tests:
        result["feature_injection"] = feature_injection(workspace, split, methods=methods, seed=args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print(f"forget set {split.spec}: {len(split.forget)} images; non-members: {len(verdicts.nonmembers)} test images")
    print(_markdown([{k: row.get(k) for k in VERDICT_COLUMNS if k in row} for row in rows]))
    for name in ("interclass_confusion", "feature_injection"):
        if name in result:
            print(f"\n{name.replace('_', ' ')}:")
            print(_markdown(result[name]))
    print(f"\n{result['seconds']} s")
    return 0


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_short(row.get(k)) if not isinstance(row.get(k), float) else f"{row[k]:.3f}" for k in header) + " |")
    return "\n".join(lines)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="olvido",
        description="Machine unlearning for age regression from faces: prepare data, train the original and "
        "retrained models, unlearn, and measure how well the model forgot.",
    )
    parser.add_argument("--cache", help="cache folder (default $OLVIDO_CACHE or ~/.cache/olvido)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = commands.add_parser("data", help="prepare and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    prepare = data_commands.add_parser(
        "prepare",
        help="read UTKFace (or synthetic faces), run the thesis protocol, write the manifest, print a summary",
        description="Read the images (decoded once, then cached), run the thesis protocol (30%% stratified "
        "reduction, ages 20-60, optional quality filter, 60/20/20 split, balance augmentation to 150 per "
        "age), write the manifest into the cache and print a summary.",
    )
    _add_data_options(prepare)
    prepare.add_argument("--json", action="store_true", help="print the summary as JSON (keys in the README)")
    prepare.set_defaults(handler=cmd_data_prepare)

    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain the backbone for age on the faces the protocol left out (cached)",
        description="Train the backbone (ImageNet weights) end to end for age regression, with a linear head, "
        "on the ~70%% of the source that the 30%% reduction did not select: disjoint from every "
        "train/val/test/forget sample. Cached by hash and reused by every later command.",
    )
    _add_model_options(pretrain)
    pretrain.set_defaults(handler=cmd_pretrain)

    train = commands.add_parser("train", help="train (or load from the cache) the original or a retrained model")
    train_commands = train.add_subparsers(dest="role", metavar="ROLE", required=True)
    original = train_commands.add_parser(
        "original", help="M_O: trained on the train split, early-stopped on validation; prints test MAE"
    )
    retrain = train_commands.add_parser(
        "retrain", help="M_R: trained on the retain part of train, early-stopped on the retain part of val"
    )
    retrain.add_argument("--forget", default="group:0", help="forget set spec, e.g. group:0 (default), random:0.1, ids:@FILE")
    for sub in (original, retrain):
        _add_model_options(sub)
        sub.add_argument("--seed", type=_non_negative_int, default=0, help="training seed (default 0)")
        sub.set_defaults(handler=cmd_train)

    run = commands.add_parser(
        "run",
        help="the whole study: prepare, pretrain, O, every R^j, FT and RND, metrics, report",
        description="Prepare the data, pretrain the backbone (cached), train M_O and every M_R^j, unlearn with "
        "each method, run Experiments 1-3 over the seeds, and write the report (index.md, CSV, PNG) to --out. "
        "Every model and cell is cached: a killed run resumes where it stopped.",
    )
    _add_study_options(run, with_scope=False)
    run.add_argument("--verdict-k", type=_non_negative_int, default=None, help="models per side for the NeurIPS score in the report (default 32; quick preset and the last/all scopes 0)")
    run.add_argument("--shadows", type=_non_negative_int, default=None, help="LiRA shadow models in the report (default 16; quick preset and the last/all scopes 0)")
    run.add_argument("--no-verdicts", action="store_true", help="skip the verdicts (MIA, epsilon score, ...) in the report")
    run.add_argument("--scopes", default="head", help="comma-separated trainable scopes to study (default head; e.g. head,last)")
    run.add_argument("--out", default="results", help="report folder (default results)")
    run.set_defaults(handler=cmd_run)

    experiment = commands.add_parser("experiment", help="one of the thesis's experiments, printed as a table")
    experiment.add_argument("experiment", choices=["alpha", "epochs", "groups"], help="alpha (Table 3), epochs (Tables 4-7), groups (Table 8)")
    _add_study_options(experiment)
    experiment.set_defaults(handler=cmd_experiment)

    evaluate = commands.add_parser(
        "evaluate",
        help="verdicts against retraining: thesis metric, MIA, LiRA, NeurIPS epsilon score, distances, relearn time",
        description="Evaluate the original model, each unlearning method and a second retrained model (the "
        "perfect-forget sanity row) against the retrained reference on one forget set. With --model, "
        "evaluate that checkpoint instead (single-model verdicts only).",
    )
    _add_model_options(evaluate)
    evaluate.add_argument("--forget", default="group:0", help="forget set spec (default group:0)")
    evaluate.add_argument("--methods", default="finetune,random_labels", help="methods to evaluate (default finetune,random_labels)")
    evaluate.add_argument("--best-epochs", type=_best_epochs, default=None, help="epochs per method, e.g. finetune=8 (default: each method's default)")
    evaluate.add_argument("--k", type=_non_negative_int, default=32, help="models per side for the NeurIPS score (default 32; 0 skips)")
    evaluate.add_argument("--shadows", type=_non_negative_int, default=16, help="LiRA shadow models (default 16; 0 skips)")
    evaluate.add_argument("--tests", default="", help="extra tests: ic (interclass confusion), fi (feature injection), e.g. ic,fi")
    evaluate.add_argument("--model", default=None, help="evaluate this model checkpoint instead of O and the methods")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except OlvidoError as error:
        print(f"olvido: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("olvido: interrupted; finished work is cached and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
