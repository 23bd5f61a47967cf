"""Helpers for benchmark scripts: machine description and writing a section of BENCHMARKS.md."""

from __future__ import annotations

import datetime as _dt
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

from olvido.pipeline import machine_description

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md, stamped with command, machine and date."""
    stamp = (
        f"- command: `{command}`\n- machine: {machine_description()}\n"
        f"- date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} (commit {git_revision()})\n\n"
    )
    section = f"<!-- bench:{name} -->\n## {name}\n\n{stamp}{body.strip()}\n<!-- /bench:{name} -->"
    text = (
        BENCHMARKS.read_text()
        if BENCHMARKS.exists()
        else "# Benchmarks\n\nEach section is written by the script named in its command.\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)


# What a warm cache lends a benchmark: one-time costs (decoded images, manifests, the face-pretrained
# backbone, cached features); trained models and results are never copied, so they are timed.
WARM_FOLDERS = ("images", "manifests", "backbones", "features")


def copy_warm_cache(warm: str | Path, cache: Path) -> None:
    for folder in WARM_FOLDERS:
        if (Path(warm) / folder).exists():
            shutil.copytree(Path(warm) / folder, cache / folder, dirs_exist_ok=True)
