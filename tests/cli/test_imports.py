"""What the command line imports before it runs a command: `runner --help` and every command's start must
not pay for the Docker SDK, mitmproxy, hyperscan, cryptography, OpenTelemetry, jsonschema or GitPython;
each command imports its stage inside its own function. Checked on `sys.modules` in a fresh interpreter,
never on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner.cassettes.importers import MAX_IMPORT_BYTES
from runner.cli import cassette

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "mitmproxy", "hyperscan", "cryptography", "opentelemetry", "jsonschema", "git")


def _heavy_after(code: str) -> list[str]:
    """The heavy top-level packages in `sys.modules` after running `code` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_importing_the_command_line_pulls_in_no_heavy_library() -> None:
    assert _heavy_after("import runner.cli") == []


def test_every_commands_help_pulls_in_no_heavy_library() -> None:
    """`--version`, then `--help` of the app and of every group and command, walked from the app itself."""
    code = """
import typer
from typer.core import TyperGroup
from runner.cli import app

def paths(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, TyperGroup):
            yield from paths(command, (*path, name))

root = typer.main.get_command(app)
helps = [["--version"], ["--help"], *([*p, "--help"] for p in paths(root))]
assert len(helps) > 25, helps  # the walk found the command tree
for argv in helps:
    try:
        app(argv, prog_name="runner")
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
"""
    assert _heavy_after(code) == []


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a stage module that needs the Docker SDK is seen."""
    assert "docker" in _heavy_after("import runner.engine.images")


def test_the_cassette_size_default_is_the_importers_cap() -> None:
    assert cassette.MAX_IMPORT_MIB * 2**20 == MAX_IMPORT_BYTES
