"""`inspect` and the `runner verify`/`runner inspect` commands over good and bad packs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.pack import read as pack_read
from runner.pack import summary as pack
from tests.packfactory import make_manifest, make_pack, repack

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


# --- manifests that used to end in a traceback ------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"  seed: 424242\n", b"  seed: " + b"9" * 5000 + b"\n", "an integer of 5000 characters is too long"),
        (
            b"created_at: '2025-11-24T13:42:17Z'",
            b"created_at: 0000-01-01T00:00:00Z",
            "year 0 is out of range",
        ),
        (
            b"created_at: '2025-11-24T13:42:17Z'",
            b"created_at: 2025-11-24T13:42:17+24:00",
            "not a valid timestamp",
        ),
    ],
)
@pytest.mark.parametrize("command_name", ["verify", "inspect"])
def test_a_manifest_that_python_cannot_hold_is_one_line_and_exit_2(
    small_pack: Path, tmp_path: Path, command_name: str, old: bytes, new: bytes, message: str
) -> None:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        assert old in members[0][1]
        return [(members[0][0], members[0][1].replace(old, new)), *members[1:]]

    bad = repack(small_pack, tmp_path / "bad.tar.zst", edit)
    result = CliRunner().invoke(app, [command_name, str(bad)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and message in lines[0] and "line " in lines[0]
    assert "Traceback" not in result.output


def test_inspect_shows_the_largest_integers_the_reader_accepts(tmp_path: Path) -> None:
    from dataclasses import replace

    m = make_manifest()
    assert m.llm is not None
    p = make_pack(tmp_path, llm=replace(m.llm, seed=2**64 - 1, max_tokens=2**63))
    result = CliRunner().invoke(app, ["inspect", str(p)], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and f"seed={2**64 - 1}" in result.stdout
