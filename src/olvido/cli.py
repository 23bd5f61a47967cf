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


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        help="UTKFace folder or .tar/.tar.gz archive; 'synthetic' or 'synthetic:N' (default) for generated faces",
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="protocol seed (default 0)")
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

    config = ProtocolConfig(seed=args.seed, quality_filter=args.quality_filter)
    prepared = prepare_dataset(args.data, config, image_size=args.image_size, cache=args.cache, progress=not args.quiet)
    summary = summarize(prepared, args.data)
    _warn_skipped(summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_prepare(summary)
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
