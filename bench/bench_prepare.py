"""Time the first prepare of UTKFace from the archive (cold cache) and the cached reload.

TORCH_HOME=../shared/torch .venv/bin/python bench/bench_prepare.py --data ../shared/data/utkface/UTKFace.tar.gz
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from olvido.data import ProtocolConfig, prepare_dataset

from common import median, timed, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="olvido-bench-"))

    def cold() -> None:
        cache = work / "cold"
        shutil.rmtree(cache, ignore_errors=True)
        prepare_dataset(args.data, ProtocolConfig(), cache=cache, progress=False)

    def warm() -> None:
        prepare_dataset(args.data, ProtocolConfig(), cache=work / "warm", progress=False)

    cli = [
        sys.executable,
        "-m",
        "olvido.cli",
        "-q",
        "--cache",
        str(work / "warm"),
        "data",
        "prepare",
        "--data",
        args.data,
        "--json",
    ]

    def warm_cli() -> None:
        subprocess.run(cli, check=True, capture_output=True)

    cold_times = timed(cold, args.repeats)
    warm()  # fill the warm cache once
    warm_times = timed(warm, max(5, args.repeats))
    cli_times = timed(warm_cli, max(5, args.repeats))
    shutil.rmtree(work, ignore_errors=True)

    fmt = lambda ts: ", ".join(f"{t:.2f}" for t in ts)
    body = f"""
| what | median (s) | runs (s) | target |
| --- | --- | --- | --- |
| first prepare, cold cache (decode 23,708 images + protocol + manifest) | {median(cold_times):.2f} | {fmt(cold_times)} | <= 60 |
| cached reload (library call: hash archive, load decoded images, protocol, manifest) | {median(warm_times):.2f} | {fmt(warm_times)} | <= 3 |
| cached reload, whole CLI process (`olvido data prepare --json`, interpreter start included) | {median(cli_times):.2f} | {fmt(cli_times)} | - |
"""
    write_section(
        "Data preparation (issue 2)",
        body,
        "make bench  # bench/bench_prepare.py --data ../shared/data/utkface/UTKFace.tar.gz",
    )
    print(body)


if __name__ == "__main__":
    main()
