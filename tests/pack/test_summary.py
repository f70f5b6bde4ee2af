"""`inspect` and the `runner verify`/`runner inspect` commands over good and bad packs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.pack import read as pack_read
from runner.pack import summary as pack
from tests.packfactory import make_manifest, repack

# --- command line ---------------------------------------------------------------------------------


def test_cli_verify_and_inspect(small_pack: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(small_pack)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok ")
    shown = runner.invoke(app, ["inspect", str(small_pack)])
    assert shown.exit_code == 0 and "pytest -q" in shown.stdout and "patches/0001.diff" in shown.stdout
    data = json.loads(runner.invoke(app, ["inspect", str(small_pack), "--json"]).stdout)
    assert data["manifest"]["session"]["id"] == make_manifest().session.id
    assert data["compression_ratio"] > 1 and data["content_bytes"] > data["pack_bytes"]


@pytest.mark.parametrize("command_name", ["verify", "inspect"])
def test_cli_bad_pack_exits_2_with_one_line(tmp_path: Path, command_name: str) -> None:
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(b"not a pack at all" * 10)
    result = CliRunner().invoke(app, [command_name, str(bad)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]


def test_inspect_reads_only_the_manifest(small_pack: Path, tmp_path: Path) -> None:
    # A pack whose later members are damaged still inspects: inspect stops after the first member.
    damaged = repack(small_pack, tmp_path / "d.tar.zst", lambda m: [*m[:2], (m[2][0], b"changed")])
    summary = pack.inspect(damaged)
    assert summary.manifest == pack.inspect(small_pack).manifest
    assert not pack_read.verify(damaged).ok
