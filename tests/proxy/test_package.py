"""The public surface of the proxy package: sorted `__all__`, standard library and mitmproxy only."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PROXY = Path(__file__).parents[2] / "proxy"
MODULES = sorted(p.stem for p in PROXY.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_exported(name: str) -> None:
    module = importlib.import_module(f"proxy.{name}")
    exported = list(module.__all__)
    # isort style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert all(hasattr(module, item) for item in exported)


@pytest.mark.parametrize("name", MODULES)
def test_imports_only_the_standard_library_and_mitmproxy(name: str) -> None:
    tree = ast.parse((PROXY / f"{name}.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"mitmproxy", "proxy"}
    assert roots <= allowed, roots - allowed
