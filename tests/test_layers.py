"""The package's floors: nothing imports a higher floor (the developers' guide's layering rule)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "olvido"
# Lowest first. ``training`` is a model-agnostic floor below ``models``; metrics are pure functions.
FLOORS = [
    {"errors", "storage", "checkpoint", "metrics", "executor", "ledger"},
    {"data", "training"},
    {"models"},
    {"methods"},
    {"experiments"},
    {"report"},
    {"pipeline", "deletion"},
    {"cli"},
]


def _floor(module: str) -> int:
    top = module.split(".")[1] if module.startswith("olvido.") else module
    for index, names in enumerate(FLOORS):
        if top in names:
            return index
    raise AssertionError(f"olvido.{top} is on no floor; add it to FLOORS")


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_a_higher_floor(path):
    own = _floor("olvido." + path.relative_to(SRC).with_suffix("").as_posix().replace("/", "."))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("olvido."):
            assert _floor(node.module) <= own, f"{path.relative_to(SRC)} imports {node.module} from a higher floor"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("olvido."):
                    assert _floor(alias.name) <= own, f"{path.relative_to(SRC)} imports {alias.name}"
