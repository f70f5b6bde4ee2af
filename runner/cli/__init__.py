"""The `runner` command line: the Typer app, its root options, and one entry per command group.

Each command group lives in its own module (engine, pack, privacy, ...) as a nameless Typer `app` whose
commands are merged into the root; adding a group is a new module plus one entry in `GROUPS` naming the
commands it registers (tests/cli/test_app.py checks the entries against the modules). A command parses,
calls one stage verb, prints, and picks the exit code (`runner.errors.ExitCode`): only the CLI prints
errors and chooses exit codes. `main` is the console script and `python -m runner`.
Start: `main` imports and builds only the group that owns the command named first (`runner record ...`
imports runner.cli.record alone, and Typer builds only its parameters); `runner`, `runner --help`,
`--version` and an unknown command build every group, in `GROUPS` order. `app` (every group) is built on
first access.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from runner import __version__, finish
from runner.cli.common import say

if TYPE_CHECKING:
    app: typer.Typer

__all__ = ["GROUPS", "app", "build", "main"]

# Module under runner.cli -> the top-level commands it registers. The order is the order of
# `runner --help`: the workflow first, the machine set-up last.
GROUPS: dict[str, tuple[str, ...]] = {
    "record": ("record",),
    "replay": ("replay",),
    "report": ("report",),
    "view": ("view",),
    "golden": ("golden",),
    "config": ("rollback", "config"),
    "drift": ("drift", "diff", "contract"),
    "pack": ("inspect", "verify"),
    "privacy": ("sign", "keys"),
    "store": ("store",),
    "oci": ("push", "pull"),
    "debug": ("debug",),
    "cassette": ("cassette",),
    "engine": ("doctor", "images"),
}
_OWNER = {command: module for module, commands in GROUPS.items() for command in commands}
_HELP = "Record AI coding-agent sessions into repro packs and replay them hermetically in Docker."


def _version(value: bool) -> None:
    if value:
        say(f"runner {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Record AI coding-agent sessions into repro packs and replay them hermetically in Docker."""


def build(modules: Iterable[str] = GROUPS) -> typer.Typer:
    """The root app with the commands of `modules` (names under runner.cli), in that order."""
    root = typer.Typer(
        name="runner",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    root.callback()(_root)
    for module in modules:
        root.add_typer(importlib.import_module(f"{__name__}.{module}").app)
    return root


def _needed(argv: Sequence[str]) -> tuple[str, ...]:
    """The group modules a run with these arguments needs: the owner of a known first command, else all."""
    owner = _OWNER.get(argv[0]) if argv else None
    return (owner,) if owner is not None else tuple(GROUPS)


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = globals()["app"] = build()
    return built


def main() -> None:
    _stop_on_sigterm()
    try:
        build(_needed(sys.argv[1:]))(prog_name="runner")
    finally:
        finish()


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, `timeout`, `kill`) stops a command as Ctrl-C does: what it started is
    removed, what it wrote is whole, and it exits 130. Left ignored when it was ignored when we started."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
