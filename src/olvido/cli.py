"""``olvido`` command line: a thin layer that parses options, calls the library and prints results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from olvido.errors import OlvidoError

SCOPES = ("head", "last", "all")  # olvido.models.backbones.SCOPES, repeated so --help needs no torch import

Handler = Callable[[argparse.Namespace], int]


def _int_at_least(minimum: int) -> Callable[[str], int]:
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _add_data_options(parser: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    parser.add_argument(
        "--data",
        help="UTKFace folder or .tar/.tar.gz archive; 'synthetic' or 'synthetic:N' (default) for generated faces",
    )
    parser.add_argument(
        seed_flag, dest="data_seed", type=_non_negative_int, default=0, help="data protocol seed (default 0)"
    )
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
        "--init",
        default="face",
        help="backbone weights: face (ImageNet, then pretrained on the faces the protocol left out; default), "
        "imagenet, none, or a checkpoint path",
    )
    if with_scope:
        parser.add_argument("--scope", choices=list(SCOPES), default="head", help="what trains (default head)")
    parser.add_argument(
        "--ensemble",
        type=_positive_int,
        default=None,
        help="models averaged (default 3, as the thesis; 1 for the last and all scopes in run/experiment)",
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=_positive_int,
        default=None,
        help="face pretraining epochs (default: the recipe's; quick preset 1)",
    )
    parser.add_argument(
        "--no-mirror",
        action="store_true",
        help="predict on each face only (default: averaged with its mirror in the head scope)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _pretrain_config(args: argparse.Namespace, base=None):
    from dataclasses import replace

    from olvido.models.pretrain import DEFAULT_PRETRAIN

    base = base or DEFAULT_PRETRAIN
    epochs = args.pretrain_epochs or base.epochs
    return replace(base, backbone=args.backbone, epochs=epochs, warmup_epochs=min(base.warmup_epochs, epochs - 1))


def _workspace(args: argparse.Namespace):
    from olvido.experiments.workspace import ModelConfig, Workspace

    prepared = _prepared(args)
    model = ModelConfig(
        backbone=args.backbone,
        init=args.init,
        scope=args.scope,
        ensemble=args.ensemble or 3,
        mirror=False if args.no_mirror else None,
    )
    return Workspace(
        prepared,
        model,
        pretrain_config=_pretrain_config(args),
        cache=args.cache,
        progress=not args.quiet,
        device=args.device,
    )


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
    }
    if args.export:
        from olvido.experiments.bundle import export_bundle, save_bundle

        if args.role != "original":
            raise OlvidoError("--export: only the original model is deployed; expected olvido train original")
        bundle = export_bundle(workspace, trained, args.data)
        result["bundle"] = str(save_bundle(bundle, args.export))
        result["model_hash"] = bundle.model_hash
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    _emit(result, args.json)
    return 0


def _request_list(text: str, what: str) -> list[str]:
    from olvido.data.forget import read_list

    values = read_list(text)
    if not values:
        raise OlvidoError(f"{text}: empty; expected {what}, one per line in a file (@FILE) or comma-separated")
    return values


def cmd_forget(args: argparse.Namespace) -> int:
    from olvido.deletion import honour_request

    ids = None
    if args.ids is not None:
        try:
            ids = [int(value) for value in _request_list(args.ids, "image ids")]
        except ValueError as error:
            raise OlvidoError(f"--ids: {error.args[0].split(': ')[-1]} is not an id; expected whole numbers") from None
    files = None if args.files is None else _request_list(args.files, "file names")
    outcome = honour_request(
        args.model,
        args.out,
        ids=ids,
        files=files,
        method=args.method,
        verify=args.verify,
        request_id=args.request_id,
        ledger=args.ledger,
        data=args.data,
        cache=args.cache,
        progress=not args.quiet,
        device=args.device,
    )
    record, row = outcome.record, outcome.row
    if args.json:
        print(json.dumps({"reused": outcome.reused, "ledger_row": row.seq, **record}, indent=2))
        return 0
    audit = record["audit"]
    if outcome.reused:
        print(f"request {row.request_id}: already honoured (ledger row {row.seq}); nothing was done again")
    print(f"request      {row.request_id}: {len(row.ids)} image(s) deleted with {record['method']['label']}")
    print(f"model        {row.parent_hash[:12]} -> {row.child_hash[:12]}  {row.child_path}")
    print(f"audit        {row.report_path}  (ledger row {row.seq})")
    checks = audit["checks"]
    for name, values in checks.items():
        print(
            f"  {name:<10} deleted MAE {values['deleted_mae']:.2f}  unseen same-age MAE "
            f"{values['unseen_same_age_mae']:.2f}  membership AUC {values['membership_auc']:.3f} "
            f"(p {values['membership_p']:.3f}): {values['finding']}"
        )
    for name, values in audit.get("against_retrained", {}).items():
        print(
            f"  {name:<10} against retrained: F {values['F']:.3f}  Forgetting {values['forgetting']:.3f}  "
            f"Wasserstein {values['wasserstein']:.2f}"
        )
    print(f"verdict      {audit['verdict']}: {audit['summary']}")
    print(f"time         {record['seconds']['total']} s")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from olvido.ledger import LEDGER_NAME, Ledger

    path = args.ledger or (
        Path(args.model).resolve().parent / LEDGER_NAME if getattr(args, "model", None) else Path(LEDGER_NAME)
    )
    if not path.exists():
        raise OlvidoError(f"{path}: no ledger; expected the ledger.sqlite3 that olvido forget wrote (--ledger)")
    book = Ledger(path)
    if args.ledger_command == "list":
        rows = book.rows()
        if args.json:
            print(json.dumps([row.to_dict() for row in rows], indent=2))
            return 0
        from olvido.report.study_report import markdown_table

        print(
            markdown_table(
                ["row", "request", "time", "images", "method", "parent", "child", "file"],
                [
                    [
                        r.seq,
                        r.request_id,
                        r.created,
                        len(r.ids),
                        r.method,
                        r.parent_hash[:12],
                        r.child_hash[:12],
                        r.child_path,
                    ]
                    for r in rows
                ],
            )
        )
        return 0
    if args.ledger_command == "show":
        row = book.find(args.request_id)
        if row is None:
            raise OlvidoError(f"request {args.request_id}: not in ledger {path}; expected one of olvido ledger list")
        print(json.dumps(row.to_dict(), indent=2))
        return 0
    from olvido.experiments.bundle import bundle_file_hash, load_bundle

    model_hash = load_bundle(args.model).model_hash if args.model else None
    result = book.verify(model_hash=model_hash, file_hash=bundle_file_hash)
    if args.json:
        print(json.dumps(vars(result), indent=2))
    elif result.ok:
        anchored = f"; {args.model} is its latest model" if args.model else ""
        print(f"ledger {path}: {result.rows} row(s), the hash chain verifies{anchored}")
    else:
        print(f"ledger {path}: BROKEN; first broken link: {result.problems[0]}")
        for problem in result.problems[1:]:
            print(f"  also: {problem}")
    return 0 if result.ok else 1


def cmd_sisa(args: argparse.Namespace) -> int:
    import time

    from olvido.data import parse_forget
    from olvido.executor import get_executor
    from olvido.experiments.sisa import Sisa, SisaConfig
    from olvido.metrics import mean_absolute_error

    started = time.perf_counter()
    config = SisaConfig(args.shards, args.slices, args.sisa_epochs, args.aggregation, args.seed)
    if args.action == "forget" and not args.forget:
        raise OlvidoError("olvido sisa forget: expected --forget SPEC (e.g. ids:12,40 or random:1, one random image)")
    workspace = _workspace(args)
    deletion = None  # train ignores --forget
    if args.forget and args.action != "train":
        deletion = parse_forget(workspace.prepared.manifest, args.forget)
    with get_executor(args.executor, args.ray_address, progress=not args.quiet) as executor:
        sisa = Sisa(workspace, config, executor)
        result = sisa.train() if deletion is None else sisa.forget(deletion)
    if args.export:
        from olvido.experiments.bundle import export_sisa_bundle, save_bundle

        if args.action != "train":
            raise OlvidoError("--export: exports the SISA model of the whole train split; expected olvido sisa train")
        exported = export_sisa_bundle(sisa, result, args.data)
        save_bundle(exported, args.export)
    report = {
        "action": args.action,
        "sisa": {"shards": config.shards, "slices": config.slices, "epochs": config.epochs, "seed": config.seed},
        "aggregation": config.aggregation,
        "forget": None if deletion is None else deletion.summary(),
        "shard_sizes": result.shard_sizes,
        "trained_slices": result.trained_slices,
        "total_slices": result.total_slices,
        "fraction_trained": round(result.fraction, 4),
        "expected_fraction_one_deletion": round(config.expected_deletion_fraction(), 4),
        "train_seconds": result.seconds,
        **workspace.evaluate(result.model),
    }
    if args.export:
        report.update(bundle=str(args.export), model_hash=exported.model_hash)
    if deletion is not None:
        predicted = workspace.predict(result.model, deletion.forget)
        report["forget_mae"] = mean_absolute_error(workspace.ages(deletion.forget), predicted)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    _emit(report, args.json)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from olvido.executor import get_executor
    from olvido.experiments.tuning import TUNING_SEEDS, Tuner, TuningConfig
    from olvido.pipeline import RunConfig
    from olvido.report.study_report import format_params
    from olvido.report.tuning_report import write_tuning

    if args.ensemble is None:  # the study's models: one member per seed in the last and all scopes
        args.ensemble = dict(RunConfig().ensemble_by_scope).get(args.scope, 3)
    config = TuningConfig(
        trials=args.trials,
        seeds=args.tuning_seeds or TUNING_SEEDS,
        group=args.group,
        forget_fraction=args.forget_fraction,
        prune=not args.no_prune,
        max_time_ratio=args.max_time_ratio,
    )
    workspace = _workspace(args)
    results = []
    with get_executor(args.executor, args.ray_address, progress=not args.quiet) as executor:
        for method in args.methods.split(","):
            tuner = Tuner(workspace, method.strip(), config, args.storage, executor, progress=not args.quiet)
            results.append(tuner.run())
    summary = write_tuning(args.out, results)
    report = {"out": str(summary.parent), "tuned": [result.summary() for result in results]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for result in results:
            params = format_params(result.best_params, "=")
            print(
                f"{result.method:<18} {result.scope:<5} objective {result.best_value:.4f}  {params}  "
                f"({result.trials['complete']} complete, {result.trials['pruned']} pruned, "
                f"{result.trials['fail']} failed; {result.minutes} min)"
            )
        print(f"tuned configurations: {summary.parent / 'tuned.yaml'}; summary: {summary}")
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers such as 2,4,8,16") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers >= 0")
    return values


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _method_values(text: str) -> dict[str, str]:
    """``METHOD=VALUE`` pairs as strings; ``{}`` when the text is not of that shape."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(pair) != 2 or not pair[1].strip() for pair in pairs):
        return {}
    return {method.strip(): value.strip() for method, value in pairs}


def _best(text: str) -> dict[str, object]:
    """``METHOD=VALUE`` pairs: each method's knob value for the methods and alpha experiments."""
    pairs = _method_values(text)
    try:
        if not pairs:
            raise ValueError
        return {method: _number(value) for method, value in pairs.items()}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected METHOD=VALUE pairs such as finetune=8,random_labels=2"
        ) from None


def _sweeps(text: str) -> dict[str, tuple]:
    """``METHOD=V/V/V`` pairs: the knob values to sweep for a method."""
    pairs = _method_values(text)
    try:
        if not pairs:
            raise ValueError
        return {method: tuple(_number(v) for v in value.split("/") if v) for method, value in pairs.items()}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected METHOD=V/V/V pairs such as finetune=2/4/8,scrub=1/3"
        ) from None


def _add_study_options(parser: argparse.ArgumentParser, with_scope: bool = True) -> None:
    _add_model_options(parser, with_scope)
    parser.add_argument(
        "--preset",
        choices=["thesis", "quick"],
        default="thesis",
        help="thesis (default): 3 seeds, ensembles of 3 (head scope), K=32, 16 shadows; quick: 1 seed, single "
        "networks, 1 pretraining epoch, two knob values per method, single-model verdicts: the whole pipeline in "
        "minutes",
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=None, help="runs per cell, seeds 0..N-1 (default 3; quick 1)"
    )
    parser.add_argument("--groups", type=_int_list, default=None, help="forget groups (default 0,1,2,3,4)")
    parser.add_argument(
        "--methods",
        default="all",
        help="unlearning methods, comma-separated (default all: every registered method supporting the scope; "
        "'olvido methods' lists them)",
    )
    parser.add_argument(
        "--sweep",
        type=_sweeps,
        default=None,
        help="knob values to sweep per method, e.g. finetune=2/4/8,scrub=1/3 (default: each method's)",
    )
    parser.add_argument(
        "--epochs", type=_int_list, default=None, help="sweep these epoch counts for every method whose knob is epochs"
    )
    parser.add_argument(
        "--best",
        "--best-epochs",
        dest="best",
        type=_best,
        default=None,
        help="knob value per method for the methods and alpha experiments, e.g. finetune=8 (default: highest mean "
        "F in the sweep)",
    )


def _run_config(args: argparse.Namespace, scopes: tuple[str, ...]):
    from dataclasses import replace

    from olvido.experiments.verdicts import VerdictConfig
    from olvido.methods import get_method
    from olvido.pipeline import RunConfig

    config = RunConfig.from_preset(args.preset, scopes)
    study = config.study
    methods = None if args.methods.strip() == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    sweeps = dict(study.sweeps)
    if args.epochs:
        for method in methods or [m for m in _registered() if get_method(m).knob.name == "epochs"]:
            if get_method(method).knob.name == "epochs":
                sweeps[method] = args.epochs
    sweeps.update(args.sweep or {})
    if methods is not None:
        sweeps = {m: v for m, v in sweeps.items() if m in methods or (args.sweep and m in args.sweep)}
    study = replace(
        study,
        methods=methods,
        sweeps=tuple(sweeps.items()),
        best=tuple((args.best or {}).items()),
        seeds=tuple(range(args.seeds)) if args.seeds else study.seeds,
        groups=args.groups or study.groups,
    )
    model = replace(
        config.model,
        backbone=args.backbone,
        init=args.init,
        mirror=False if args.no_mirror else config.model.mirror,
        ensemble=args.ensemble or config.model.ensemble,
    )
    ensemble_by_scope = () if args.ensemble else config.ensemble_by_scope
    verdicts, verdicts_by_scope = config.verdicts, config.verdicts_by_scope
    memorising_by_scope = config.memorising_by_scope
    if getattr(args, "memorising_shadows", None) is not None:
        memorising_by_scope = config.with_memorising_shadows(args.memorising_shadows).memorising_by_scope
    if getattr(args, "no_verdicts", False):
        verdicts, verdicts_by_scope, memorising_by_scope = None, (), ()
    elif getattr(args, "verdict_k", None) is not None or getattr(args, "shadows", None) is not None:
        base = config.verdicts or VerdictConfig()
        verdicts = replace(
            base,
            k=args.verdict_k if args.verdict_k is not None else base.k,
            shadows=args.shadows if args.shadows is not None else base.shadows,
        )
        verdicts_by_scope = ()
    return replace(
        config,
        study=study,
        model=model,
        ensemble_by_scope=ensemble_by_scope,
        verdicts=verdicts,
        verdicts_by_scope=verdicts_by_scope,
        memorising_by_scope=memorising_by_scope,
        pretrain=_pretrain_config(args, config.pretrain),
        executor=getattr(args, "executor", "local"),
        tuned_dirs=tuple(getattr(args, "tuned", None) or ()),
        ray_address=getattr(args, "ray_address", None),
    )


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where many-model work runs (K-model sets, shadows): local (default, one after another) or ray "
        "(one CPU and one torch thread per task; a local Ray with this machine's cores unless --ray-address)",
    )
    parser.add_argument(
        "--ray-address", default=None, help="join this Ray cluster (auto or host:port); needs --executor ray"
    )


def _registered(scope: str | None = None) -> list[str]:
    """Every registered unlearning method (supporting ``scope``), retraining excluded: it is the reference."""
    from olvido.methods import list_methods

    return [m for m in list_methods(scope) if m != "retrain"]


def _prepared(args: argparse.Namespace):
    from olvido.data import ProtocolConfig, prepare_dataset

    config = ProtocolConfig(seed=args.data_seed, quality_filter=args.quality_filter)
    return prepare_dataset(args.data, config, image_size=args.image_size, cache=args.cache, progress=not args.quiet)


def cmd_run(args: argparse.Namespace) -> int:
    from olvido.pipeline import run_all

    scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    for scope in scopes:
        if scope not in SCOPES:
            raise OlvidoError(f"--scopes {args.scopes}: expected a comma-separated list of {', '.join(SCOPES)}")
    config = _run_config(args, scopes)
    prepared = _prepared(args)
    run = run_all(prepared, config, args.out, args.data or "synthetic", args.cache, not args.quiet, args.device)
    summary = {r.scope: {"minutes": round(r.seconds / 60, 2), "best": r.best} for r in run.results}
    if args.json:
        print(json.dumps({"report": str(run.index), "scopes": summary}, indent=2))
    else:
        for scope, info in summary.items():
            print(f"scope {scope}: {info['minutes']} min, best values {info['best']}")
        print(f"report: {run.index}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from olvido.experiments.study import Study
    from olvido.pipeline import workspace_for
    from olvido.report.study_report import records_table

    config = _run_config(args, (args.scope,))
    workspace = workspace_for(_prepared(args), config, args.scope, args.cache, not args.quiet, args.device)
    study = Study(workspace, config.study, progress=not args.quiet)
    experiment = {"epochs": "sweep", "groups": "methods"}.get(args.experiment, args.experiment)
    if experiment == "sweep":
        table = study.run_sweep()
        columns = [
            "label",
            "knob",
            "value",
            "seed",
            "utility",
            "test_mae",
            "forgetting",
            "F",
            "wasserstein",
            "seconds",
            "time_ratio",
        ]
    elif experiment == "methods":
        table = study.run_methods()
        columns = [
            "group",
            "label",
            "knob",
            "value",
            "seed",
            "utility",
            "forgetting",
            "F",
            "wasserstein",
            "test_mae",
            "seconds",
            "time_ratio",
        ]
    else:
        table = study.run_alpha()
        columns = ["alpha", "label", "value", "seed", "forgetting"]
    if args.json:
        print(table[columns].to_json(orient="records", indent=2))
    else:
        print(records_table(table[columns].to_dict("records")))
    return 0


VERDICT_COLUMNS = (
    "model",
    "value",
    "test_mae",
    "utility",
    "forgetting",
    "F",
    "mia_logistic_acc",
    "mia_logistic_acc_retrained",
    "mia_svc_acc",
    "mia_svc_acc_retrained",
    "lira_auc",
    "lira_auc_retrained",
    "ulira_auc",
    "wasserstein",
    "relearn_epochs",
    "relearn_epochs_retrained",
    "neurips_note",
    "seconds",
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from olvido.data import parse_forget
    from olvido.executor import get_executor
    from olvido.experiments.verdicts import VerdictConfig, Verdicts, feature_injection, interclass_confusion
    from olvido.report.study_report import neurips_table, records_table

    started = time.perf_counter()
    workspace = _workspace(args)
    split = parse_forget(workspace.prepared.manifest, args.forget)
    names = (
        _registered() if args.methods.strip() == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    )
    unknown = sorted(set(args.best or {}) - set(names))
    if unknown:
        raise OlvidoError(f"--best {', '.join(unknown)}: not among --methods ({', '.join(names)})")
    methods = {name: (args.best or {}).get(name) for name in names}
    if args.tuned:
        from olvido.experiments.tuning import load_tuned

        if args.best:
            raise OlvidoError("--tuned and --best: expected one of them (a tuned configuration sets the knob too)")
        tuned = load_tuned(args.tuned).get(args.scope, {})
        missing = [name for name in names if name not in tuned]
        if missing:
            folders = " ".join(map(str, args.tuned))
            raise OlvidoError(f"--tuned {folders}: no {args.scope}-scope configuration for {', '.join(missing)}")
        methods = {name: dict(tuned[name]) for name in names}  # whole configurations in place of knob values
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    config = VerdictConfig(
        k=args.k, shadows=args.shadows, seed=args.seed, protocols=protocols, ulira_shadows=args.ulira_shadows
    )
    executor = get_executor(args.executor, args.ray_address, progress=not args.quiet)
    verdicts = Verdicts(workspace, split, config, progress=not args.quiet, executor=executor)
    if args.model:
        reference, original = verdicts.retrained(0), verdicts.original(0)
        model = verdicts.ws.load(args.model).model
        rows = [{"model": args.model, "epochs": None, "seconds": None, **verdicts.measure(model, reference, original)}]
    else:
        rows = verdicts.evaluate(methods)
    from dataclasses import asdict

    result = {
        "forget": split.summary(),
        "nonmembers": len(verdicts.nonmembers),
        "config": asdict(config),
        "rows": rows,
        "neurips": verdicts.neurips,
    }
    tests = {t.strip() for t in args.tests.split(",") if t.strip()}
    if "ic" in tests:
        result["interclass_confusion"] = interclass_confusion(workspace, methods=methods, seed=args.seed)
    if "fi" in tests:
        result["feature_injection"] = feature_injection(workspace, split, methods=methods, seed=args.seed)
    executor.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print(f"forget set {split.spec}: {len(split.forget)} images; non-members: {len(verdicts.nonmembers)} test images")
    print(records_table([{k: row.get(k) for k in VERDICT_COLUMNS if k in row} for row in rows]))
    if verdicts.neurips:
        print("\nNeurIPS forget score (prediction; [95% bootstrap interval]):")
        print(neurips_table(verdicts.neurips))
    for name in ("interclass_confusion", "feature_injection"):
        if name in result:
            print(f"\n{name.replace('_', ' ')}:")
            print(records_table(result[name]))
    print(f"\n{result['seconds']} s")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from olvido.methods import get_method, list_methods

    specs = [get_method(name).describe() for name in list_methods(args.scope)]
    if args.json:
        print(json.dumps(specs, indent=2))
        return 0
    from olvido.report.study_report import markdown_table

    rows = [
        [
            s["name"],
            s["label"],
            s["summary"],
            ", ".join(s["needs"]),
            ", ".join(s["scopes"]),
            "yes" if s["stochastic"] else "no",
            f"{s['knob']['name']} {'/'.join(map(str, s['knob']['values'])) or '-'}",
            "recipe"
            if s["continues_recipe"]
            else f"{s['defaults']['optimizer']} lr {s['defaults']['lr']:g}, batch {s['defaults']['batch_size']}",
            s["reference"],
        ]
        for s in specs
    ]
    print(
        markdown_table(
            [
                "name",
                "label",
                "what it does",
                "needs",
                "scopes",
                "stochastic",
                "knob (sweep)",
                "lr / batch",
                "reference",
            ],
            rows,
        )
    )
    return 0


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
    retrain.add_argument(
        "--forget", default="group:0", help="forget set spec, e.g. group:0 (default), random:0.1, ids:@FILE"
    )
    for sub in (original, retrain):
        _add_model_options(sub)
        sub.add_argument("--seed", type=_non_negative_int, default=0, help="training seed (default 0)")
        sub.set_defaults(handler=cmd_train, export=None)
    original.add_argument(
        "--export",
        metavar="FILE",
        help="also write a deployable bundle (weights, recipe, trained ids; e.g. model.olvido) for olvido forget",
    )

    forget = commands.add_parser(
        "forget",
        help="honour a deletion request on a deployed model bundle: new bundle, audit report, ledger row",
        description="Delete images from a model bundle (olvido train original --export): resolve the request, "
        "unlearn on the model's own remaining data, audit the deleted faces against unseen faces of the same "
        "ages, and commit the new bundle, its audit report (Markdown, JSON) and a hash-chained ledger row "
        "together. Rerunning a request id returns its recorded result.",
    )
    forget.add_argument("--model", required=True, help="the deployed bundle (the ledger's latest model)")
    request = forget.add_mutually_exclusive_group(required=True)
    request.add_argument("--files", help="file names to delete: @FILE (one per line) or comma-separated")
    request.add_argument("--ids", help="image ids to delete: @FILE (one per line) or comma-separated")
    forget.add_argument("--out", required=True, help="the new bundle (a new file)")
    forget.add_argument(
        "--method",
        default=None,
        help="unlearning method (olvido methods), 'none' (record the deletion, keep the weights) or 'retrain' "
        "(exact); default: the study's leader for the model's scope",
    )
    forget.add_argument(
        "--verify", action="store_true", help="also retrain without every deleted image and compare (slower)"
    )
    forget.add_argument("--request-id", default=None, help="the request's id (default: a hash of model and ids)")
    forget.add_argument("--ledger", default=None, help="ledger file (default: ledger.sqlite3 beside --model)")
    forget.add_argument("--data", default=None, help="the model's dataset (default: the path recorded at export)")
    forget.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    forget.add_argument("--json", action="store_true", help="print the audit record as JSON")
    forget.set_defaults(handler=cmd_forget)

    ledger = commands.add_parser(
        "ledger",
        help="list, show and verify the deletion ledger (SQLite, hash-chained)",
        description="The ledger olvido forget keeps: one row per request, each holding the previous row's hash. "
        "verify recomputes the chain, checks bundles and reports still on disk, and with --model checks that "
        "the deployed model is the latest link; it names the first broken link and exits 1 if any.",
    )
    ledger.add_argument("--ledger", type=Path, default=None, help="ledger file (default ./ledger.sqlite3)")
    ledger.add_argument("--json", action="store_true", help="print JSON")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND", required=True)
    ledger_commands.add_parser("list", help="one line per request")
    show = ledger_commands.add_parser("show", help="one request's row")
    show.add_argument("request_id")
    check = ledger_commands.add_parser("verify", help="recompute the hash chain (and check --model)")
    check.add_argument("--model", default=None, help="the deployed bundle, which must be the latest link")
    ledger.set_defaults(handler=cmd_ledger)

    sisa = commands.add_parser(
        "sisa",
        help="SISA, exact unlearning by design: train shards x slices, delete images, evaluate",
        description="SISA (docs/sisa.md): S shards x R slices of the train split, a checkpoint after every slice. "
        "'train' trains what is missing; 'forget --forget SPEC' deletes those images, retraining only the "
        "slices that held them and those after them; 'evaluate [--forget SPEC]' prints the test MAE of the "
        "model with or without the deletion. Every slice is cached: a killed run resumes.",
    )
    sisa.add_argument("action", choices=("train", "forget", "evaluate"))
    _add_model_options(sisa)
    sisa.add_argument(
        "--forget", default=None, help="images to delete, e.g. ids:12,40, ids:@FILE or random:10 (ten random images)"
    )
    sisa.add_argument("--shards", type=_positive_int, default=4, help="S, disjoint shards (default 4)")
    sisa.add_argument("--slices", type=_positive_int, default=4, help="R, slices per shard (default 4)")
    sisa.add_argument(
        "--sisa-epochs", type=_positive_int, default=20, help="e, sample-passes over each shard in all (default 20)"
    )
    sisa.add_argument("--aggregation", choices=("mean", "median"), default="mean", help="default mean")
    sisa.add_argument("--seed", type=_non_negative_int, default=0, help="placement and training seed (default 0)")
    sisa.add_argument(
        "--export", metavar="FILE", help="train: also write a deployable bundle; olvido forget then deletes exactly"
    )
    _add_executor_options(sisa)
    sisa.set_defaults(handler=cmd_sisa)

    run = commands.add_parser(
        "run",
        help="the whole study: prepare, pretrain, O, every R^j, every method, metrics, verdicts, report",
        description="Prepare the data, pretrain the backbone (cached), train M_O and every M_R^j, unlearn with "
        "each method, run Experiments 1-3 over the seeds, and write the report (index.md, CSV, PNG) to --out. "
        "Every model and cell is cached: a killed run resumes where it stopped.",
    )
    _add_study_options(run, with_scope=False)
    run.add_argument(
        "--verdict-k",
        type=_non_negative_int,
        default=None,
        help="models per side for the NeurIPS score in the report (default 32; quick preset and the last/all scopes 0)",
    )
    run.add_argument(
        "--shadows",
        type=_non_negative_int,
        default=None,
        help="LiRA shadow models in the report (default 16; quick preset and the last/all scopes 0)",
    )
    run.add_argument(
        "--memorising-shadows",
        type=_non_negative_int,
        default=None,
        help="U-LiRA shadow originals of the memorising regime in the last scope, where models train 30 epochs "
        "without early stopping and memorise their faces (default 8 in the thesis preset; 0 skips the regime)",
    )
    run.add_argument(
        "--no-verdicts", action="store_true", help="skip the verdicts (MIA, epsilon score, ...) in the report"
    )
    run.add_argument(
        "--scopes", default="head", help="comma-separated trainable scopes to study (default head; e.g. head,last)"
    )
    run.add_argument("--out", default="results", help="report folder (default results)")
    run.add_argument(
        "--tuned",
        nargs="+",
        default=None,
        metavar="DIR",
        help="one or more folders `olvido tune` wrote (where several tune the same scope and method, the last "
        "wins): every tuned method is also run at its tuned configuration, the report compares default against "
        "tuned and ranks tuned methods at their tuned configurations",
    )
    _add_executor_options(run)
    run.set_defaults(handler=cmd_run)

    tune = commands.add_parser(
        "tune",
        help="tune methods' hyperparameters against retrained models (Optuna, SQLite, resumable)",
        description="An Optuna study per method (TPE, median pruning), stored in SQLite: each trial unlearns the "
        "original of three tuning seeds (>= 10000, never the report's) with a sampled configuration and scores it "
        "against the models retrained with those seeds, on a forget set drawn from the group's training images "
        "only; the test split is never read. Writes tuned.yaml (read by `olvido run --tuned DIR`), tuning.csv/.md "
        "and plots to --out. A killed run resumes where it stopped.",
    )
    tune.add_argument("methods", metavar="METHOD", help="a registered method, or several comma-separated")
    _add_model_options(tune)
    tune.add_argument("--trials", type=_positive_int, default=50, help="trials per method (default 50)")
    tune.add_argument(
        "--storage", default=None, help="Optuna storage URL (default sqlite:///CACHE/tuning/optuna.sqlite3)"
    )
    tune.add_argument(
        "--group", type=_non_negative_int, default=0, help="age group of the tuning forget set (default 0)"
    )
    tune.add_argument(
        "--forget-fraction",
        type=float,
        default=1.0,
        help="part of the group's training originals forgotten while tuning (default 1.0: all of them, the "
        "shape of the report's whole-group deletion)",
    )
    tune.add_argument(
        "--tuning-seeds",
        type=_int_list,
        default=None,
        help="comma-separated, each >= 10000 (default 10000,10001,10002)",
    )
    tune.add_argument("--no-prune", action="store_true", help="score every trial on every seed")
    tune.add_argument(
        "--max-time-ratio",
        type=float,
        default=None,
        help="time budget: only configurations whose unlearning takes at most this share of retraining time "
        "can win (e.g. 0.3; default none)",
    )
    tune.add_argument("--out", default="tuned", help="folder for tuned.yaml, the summary and plots (default tuned)")
    _add_executor_options(tune)
    tune.set_defaults(handler=cmd_tune)

    methods = commands.add_parser(
        "methods", help="list the registered unlearning methods (name, needs, scopes, knob, defaults, reference)"
    )
    methods.add_argument("--scope", choices=list(SCOPES), default=None, help="only methods supporting this scope")
    methods.add_argument("--json", action="store_true", help="print every method's full description as JSON")
    methods.set_defaults(handler=cmd_methods)

    experiment = commands.add_parser("experiment", help="one experiment of the study, printed as a table")
    experiment.add_argument(
        "experiment",
        choices=["alpha", "sweep", "methods", "epochs", "groups"],
        help="alpha (Table 3), sweep (Tables 4-7: each method's knob; alias epochs), methods (Table 8 and the "
        "leaderboard: every method on every group; alias groups)",
    )
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
    evaluate.add_argument(
        "--methods",
        default="finetune,random_labels",
        help="methods to evaluate, or all (default finetune,random_labels)",
    )
    evaluate.add_argument(
        "--best",
        "--best-epochs",
        dest="best",
        type=_best,
        default=None,
        help="knob value per method, e.g. finetune=8 (default: each method's default)",
    )
    evaluate.add_argument(
        "--tuned",
        nargs="+",
        default=None,
        metavar="DIR",
        help="one or more folders `olvido tune --out` wrote (the last wins where several tune a method): judge "
        "each method at its tuned configuration for --scope",
    )
    evaluate.add_argument(
        "--k", type=_non_negative_int, default=32, help="models per side for the NeurIPS score (default 32; 0 skips)"
    )
    evaluate.add_argument(
        "--shadows", type=_non_negative_int, default=16, help="LiRA shadow models (default 16; 0 skips)"
    )
    evaluate.add_argument(
        "--ulira-shadows",
        type=_non_negative_int,
        default=0,
        help="U-LiRA shadow originals, each unlearned by the method under test (default 0: skipped)",
    )
    evaluate.add_argument(
        "--protocols",
        default="one original,K originals",
        help="NeurIPS-score protocols for the methods: 'one original', 'K originals' or both (default both)",
    )
    evaluate.add_argument(
        "--tests", default="", help="extra tests: ic (interclass confusion), fi (feature injection), e.g. ic,fi"
    )
    evaluate.add_argument("--model", default=None, help="evaluate this model checkpoint instead of O and the methods")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    _add_executor_options(evaluate)
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
