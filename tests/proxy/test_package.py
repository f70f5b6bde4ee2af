"""The proxy package stands alone: standard library and mitmproxy only (`__all__`: tests/test_layout.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PROXY = Path(__file__).parents[2] / "proxy"
MODULES = sorted(p.stem for p in PROXY.glob("*.py") if p.stem != "__init__")


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
