"""Time the README's main job (`make run`: `olvido run --preset quick` on synthetic faces) from an empty cache.

TORCH_HOME=../shared/torch .venv/bin/python bench/bench_main_job.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_section


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="olvido-main-job-"))
    command = [
        sys.executable,
        "-m",
        "olvido.cli",
        "-q",
        "--cache",
        str(work / "cache"),
        "run",
        "--preset",
        "quick",
        "--out",
        str(work / "results"),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    body = f"""
`olvido run --preset quick` on the default synthetic faces (6,000 images, 64 px) with an empty cache:
face pretraining (1 epoch), feature extraction, 1 seed of single networks without mirroring: O, R^j and
a second retrained model per group (0, 2, 4), every registered head-scope method at the smallest value of its
knob on groups 0, 2 and 4, the alpha sweep, single-model verdicts (MIA,
distances, relearn time), interclass confusion, feature injection, report.

| what | wall time | target |
| --- | --- | --- |
| whole main job, empty cache | {seconds / 60:.1f} min | <= 3 min |
"""
    write_section(
        "Main job on synthetic faces (issues 4, 9)",
        body,
        "bench/bench_main_job.py  # = make run, timed from an empty cache",
    )
    print(body)


if __name__ == "__main__":
    main()
