"""The shape rules of the house, checked over every module of runner/ and proxy/ at once.

Inputs: the source files under runner/ and proxy/, and their import graph (grimp, import-linter's library).
Rules checked: no module over 500 lines; no import cycle between modules; every public module that defines
anything has a sorted `__all__` of names it has.
The layers between the wings are import-linter's contracts in pyproject.toml (`lint-imports`).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.prerequisites import unavailable

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runner", "proxy")
MAX_LINES = 500
SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _defines_anything(path: Path) -> bool:
    """True when the module has a statement besides its docstring and `from __future__` imports."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node in body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            return True
    return False


PUBLIC = [
    _module_name(path) for path in SOURCES if _is_public(_module_name(path)) and _defines_anything(path)
]


def _graph() -> Any:
    try:
        import grimp
    except ImportError:  # a dev dependency (through import-linter): `make install` brings it
        unavailable("grimp is not installed; run `make install`")
    return grimp.build_graph(*PACKAGES)


def _all_order(name: str) -> tuple[bool, bool, str]:
    """isort-style order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions."""
    return (not name.isupper(), not name[:1].isupper(), name)


def test_no_module_is_over_500_lines() -> None:
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in SOURCES}
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    # Each group of modules that reach one another through imports, once.
    tangles: set[tuple[str, ...]] = set()
    for module in graph.modules:
        both_ways = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if both_ways:
            tangles.add(tuple(sorted(both_ways | {module})))
    assert sorted(tangles) == []


@pytest.mark.parametrize("module", PUBLIC)
def test_public_module_has_a_sorted_all_of_existing_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} defines names but has no __all__"
    exported = list(mod.__all__)
    assert exported == sorted(set(exported), key=_all_order)
    assert [name for name in exported if not hasattr(mod, name)] == []
