"""Text from packs never drives the terminal: control characters are shown escaped, Rich markup is data.

A crafted pack carries escape sequences and markup in its agent name, argv, step reason, media type and
artifact name; `inspect`, errors, the replay table and live progress must show them, not obey them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from runner.cli import app
from runner.display import visible
from runner.errors import ExitCode
from runner.pack import manifest as mf
from runner.pack.build import PackBuilder
from runner.progress import LiveLog
from runner.replay.outcome import PackOutcome, Verdict
from runner.replay.report.terminal import render_terminal
from tests.packfactory import command, make_pack, patch, repack

ESC = "\x1b"
CLEAR = f"{ESC}[2J{ESC}[H"  # clear the screen, cursor home
TITLE = f"{ESC}]0;pwned\x07"  # set the window title
LINK = "[link=https://evil.invalid]click[/link]"


def _odd_artifact(builder: PackBuilder, index: int) -> mf.Step:
    """A patch step, plus an artifact whose media type and name hold markup and an escape."""
    builder.add_artifact(b"log\n", media_type="text/plain;[/x]", name=f"log{ESC}[8m[/x]")
    return patch(f"p{index}", "--- a\n+++ b\n")(builder, index)


def _no_raw_controls(text: str) -> None:
    assert ESC not in text and "\x07" not in text and "\u202e" not in text, repr(text)


def test_visible_escapes_every_control_but_chosen_newlines() -> None:
    assert visible(f"a{ESC}[31mb\x07\r\n\u202ec\x9b") == "a\\x1b[31mb\\x07\\r\\n\\u202ec\\x9b"
    assert visible("two\nlines\ttab", newlines=True) == "two\nlines\\ttab"
    assert visible("plain [/x] ünïcode ✓") == "plain [/x] ünïcode ✓"


def test_inspect_shows_escapes_and_markup_from_a_pack_as_text(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        steps=[
            patch("p1", "--- a\n+++ b\n", reason=f"{CLEAR}fixed {LINK} [/x]"),
            command("c1", ["echo", TITLE, "[/x]", "\u202eexe.txt"], stdout=b"hi\n"),
            _odd_artifact,
        ],
        agent=mf.Agent(name=f"evil{CLEAR}[/x]", commit="6d1e5f2", config_version="[bold]42"),
    )
    result = CliRunner().invoke(app, ["inspect", str(pack)], env={"COLUMNS": "400"})
    assert result.exit_code == ExitCode.OK, result.output
    out = result.stdout
    _no_raw_controls(out)
    assert "evil\\x1b[2J\\x1b[H[/x]" in out
    assert "\\x1b]0;pwned\\x07" in out and "\\u202eexe.txt" in out
    assert LINK in out and "[/x]" in out  # markup stays text: not a crash, not a hidden link
    assert "text/plain;[/x]" in out and "log\\x1b[8m[/x]" in out
    assert "config [bold]42" in out


def test_errors_show_a_pack_path_with_escapes_and_markup_as_text(tmp_path: Path) -> None:
    bad = tmp_path / f"a{ESC}[2J{LINK.replace('/', '_')}[_x].tar.zst"
    bad.write_bytes(b"not a pack")
    result = CliRunner().invoke(app, ["verify", str(bad)], env={"COLUMNS": "400"})
    assert result.exit_code == ExitCode.BAD_INPUT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    _no_raw_controls(result.stderr)
    assert "a\\x1b[2J[link=https:__evil.invalid]click[_link][_x].tar.zst" in lines[0]


def test_an_error_quoting_a_pack_cannot_end_a_line_or_style_it(tmp_path: Path) -> None:
    # A duplicate key whose name is an escape sequence: the message quotes the key.
    pack = make_pack(tmp_path)
    key = '"\\e[2J[/x]"'  # YAML double-quoted escape: the key holds a real ESC

    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, d + f"{key}: 1\n{key}: 2\n".encode() if n == "manifest.yaml" else d) for n, d in members]

    forged = repack(pack, tmp_path / "forged.tar.zst", edit)
    for command_name in ("inspect", "verify"):
        result = CliRunner().invoke(app, [command_name, str(forged)], env={"COLUMNS": "400"})
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "duplicate key" in lines[0] and "[/x]" in lines[0]
        _no_raw_controls(result.stderr)


def test_the_replay_table_shows_pack_text_escaped() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=False, color_system=None)
    outcome = PackOutcome(
        pack=f"p{ESC}[2J[/x].tar.zst",
        verdict=Verdict.ERROR,
        error=f"step {TITLE} failed {LINK}",
        warnings=(f"warn {ESC}[31m[/x]",),
    )
    render_terminal([outcome], console)
    out = buf.getvalue()
    _no_raw_controls(out)
    assert "p\\x1b[2J[/x].tar.zst" in out and LINK in out and "warn \\x1b[31m[/x]" in out


@pytest.mark.parametrize("terminal", [False, True])
def test_live_progress_shows_tool_output_escaped(terminal: bool) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=terminal, color_system=None)
    with LiveLog(console) as live:
        live.step(f"build {TITLE}[/x]")
        live.line(f"{CLEAR}Step 1/3 [/x]")
        live._live.refresh()  # draw once with that line in view
        live.done(f"done {ESC}[31m[/x]")
    out = buf.getvalue()
    # With a terminal, rich draws the live view with its own cursor codes; what the pack sent is escaped.
    for raw in (TITLE, CLEAR, f"{ESC}[31m[/x]"):
        assert raw not in out
    assert "done \\x1b[31m[/x]" in out
    if not terminal:
        _no_raw_controls(out)
        assert "build \\x1b]0;pwned\\x07[/x] ..." in out


def test_store_list_shows_an_index_entry_as_text(tmp_path: Path) -> None:
    # `runner store hold --reason` takes any text, and the session id comes from a pack.
    store = tmp_path / "store"
    (store / "index").mkdir(parents=True)
    entry_id = "ab" * 32
    entry = {
        "id": entry_id,
        "session": f"s{CLEAR}[/x]",
        "added_at": "2025-11-24T13:42:17Z",
        "tier": "full",
        "hold": {"reason": f"{LINK} {TITLE}", "since": "2025-11-24T13:42:17Z", "by": "[bold]me"},
    }
    (store / "index" / f"{entry_id}.json").write_text(json.dumps(entry))
    result = CliRunner().invoke(app, ["store", "list", "--store", str(store)], env={"COLUMNS": "300"})
    assert result.exit_code == ExitCode.OK, result.output
    _no_raw_controls(result.stdout)
    assert "s\\x1b[2J\\x1b[H[/x]" in result.stdout and LINK in result.stdout
