"""Issue 32: recompute every row of a report's runs.csv from its predictions.csv.gz with the metric of
``tests/rederive.py`` (written apart from ``olvido.metrics``) and print how many rows re-derive and the
largest difference.

    .venv/bin/python bench/verify_report.py [docs/results]

Exit status 1 when a row has no predictions or differs by more than 0.005.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rederive import rederive  # noqa: E402


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "results")
    result = rederive(folder)
    print(
        f"{folder}: {result['checked']} of {result['rows']} rows re-derived, largest difference "
        f"{result['max_difference']:.5f} (row, column: {result['worst']}); {len(result['missing'])} rows without "
        "predictions"
    )
    sys.exit(1 if result["missing"] or result["max_difference"] > 0.005 else 0)


if __name__ == "__main__":
    main()
