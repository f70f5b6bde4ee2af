"""The command line as a whole: every command's help and example, --version, unknown commands, and text
from packs or errors printed verbatim (never read as Rich markup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import runner.cli
from runner import __version__
from runner.cli import GROUPS, app
from runner.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `group`, groups included, walked from the app itself so new groups count."""
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, TyperGroup):
            found += _commands(command, (*path, name))
    return found


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
COMMANDS = _commands(ROOT)
LEAVES = [p for p in COMMANDS if not isinstance(ROOT.commands[p[0]], TyperGroup) or len(p) > 1]


def test_the_tree_holds_every_command_group() -> None:
    assert {p[0] for p in COMMANDS} >= {
        "cassette", "debug", "doctor", "images", "inspect", "keys", "record", "replay", "sign", "store", "verify",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_exits_0_and_leaf_commands_show_their_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == ExitCode.OK, result.output
    assert "Usage: runner " + " ".join(path) in result.output
    if path in LEAVES:
        assert "Example" in result.output
        assert "runner " + " ".join(path) + " " in result.output.split("Example", 1)[1]


@pytest.mark.parametrize("module", GROUPS)
def test_each_groups_entry_names_the_commands_its_module_registers(module: str) -> None:
    """`main` builds only the owner of the first command: the map must match what the modules register."""
    alone = typer.main.get_command(runner.cli.build([module]))
    assert isinstance(alone, TyperGroup)
    assert tuple(alone.commands) == GROUPS[module]


def test_the_groups_are_every_command_line_module() -> None:
    modules = {p.stem for p in (REPO / "runner" / "cli").glob("*.py")} - {"__init__", "common"}
    assert set(GROUPS) == modules
    assert list(ROOT.commands) == [c for commands in GROUPS.values() for c in commands]


@pytest.mark.parametrize(
    ("argv", "built"),
    [
        (["record", "--out", "x.tar.zst", "--", "agent"], ["record"]),
        (["images", "list"], ["doctor", "images"]),
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["no-such-command"], None),
        (["--version", "record"], None),
    ],
)
def test_main_builds_only_the_group_of_the_first_command(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], built: list[str] | None
) -> None:
    seen: list[str] = []

    def run(self: typer.Typer, prog_name: str) -> None:
        command = typer.main.get_command(self)
        assert isinstance(command, TyperGroup)
        seen.extend(command.commands)

    monkeypatch.setattr(sys, "argv", ["runner", *argv])
    monkeypatch.setattr(typer.Typer, "__call__", run)
    monkeypatch.setattr(runner.cli, "finish", lambda: None)  # this test process goes on
    monkeypatch.setattr(runner.cli, "_stop_on_sigterm", lambda: None)  # and keeps its own SIGTERM
    runner.cli.main()
    assert seen == (built if built is not None else list(ROOT.commands))


def test_main_finishes_the_process_whatever_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner.finish` runs after the command, also when it leaves by an exception (Typer's exit codes)."""
    finished: list[int] = []
    monkeypatch.setattr(runner.cli, "finish", lambda: finished.append(1))
    monkeypatch.setattr(runner.cli, "_stop_on_sigterm", lambda: None)
    monkeypatch.setattr(sys, "argv", ["runner", "--version"])
    with pytest.raises(SystemExit):
        runner.cli.main()
    assert finished == [1]


def test_finish_leaves_what_was_allocated_to_the_exit() -> None:
    code = "import gc, runner; runner.finish(); print(gc.get_freeze_count() > 0)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


@pytest.mark.parametrize(("at_start", "after"), [("SIG_DFL", "_interrupt"), ("SIG_IGN", "ignored")])
def test_sigterm_stops_a_command_as_ctrl_c_does_unless_it_was_ignored(at_start: str, after: str) -> None:
    code = (
        f"import signal; signal.signal(signal.SIGTERM, signal.{at_start}); import runner.cli as cli; "
        "cli._stop_on_sigterm(); h = signal.getsignal(signal.SIGTERM); print(h.__name__ if callable(h) else 'ignored')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == after, done.stderr


def test_python_m_runner_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stdout.strip() == f"runner {__version__}"


def test_an_unknown_command_is_bad_input() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "No such command" in result.output


def test_error_text_is_printed_verbatim_not_as_markup(tmp_path: Path) -> None:
    # A stray closing tag would make Rich raise MarkupError; a [bold] tag would vanish from the message.
    folder = tmp_path / "[bold]x["
    folder.mkdir()
    pack = folder / "]y.tar.zst"  # the path reads .../[bold]x[/]y.tar.zst
    pack.write_bytes(b"not a pack")
    result = CliRunner().invoke(app, ["verify", str(pack)], env={"COLUMNS": "500"})
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "error: " in result.output
    assert "[bold]x[/]y.tar.zst" in result.output
