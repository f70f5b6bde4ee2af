"""The `runner` command line: the Typer app, its root options, and one registration line per command group.

Each command group lives in its own module (engine, pack, privacy, ...) as a nameless Typer `app` whose
commands are merged into this one; adding a group is a new module plus one entry in `_GROUPS`. A command
parses, calls one stage verb, prints, and picks the exit code (`runner.errors.ExitCode`): only the CLI
prints errors and chooses exit codes. `main` is the console script and `python -m runner`.
"""

from __future__ import annotations

import typer

from runner import __version__
from runner.cli import (
    cassette,
    config,
    debug,
    drift,
    engine,
    golden,
    oci,
    pack,
    privacy,
    record,
    replay,
    report,
    store,
    view,
)
from runner.cli.common import say

__all__ = ["app", "main"]

app = typer.Typer(
    name="runner",
    help="Record AI coding-agent sessions into repro packs and replay them hermetically in Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The order here is the order of `runner --help`: the workflow first, the machine set-up last.
_GROUPS = (
    record,
    replay,
    report,
    view,
    golden,
    config,
    drift,
    pack,
    privacy,
    store,
    oci,
    debug,
    cassette,
    engine,
)
for _group in _GROUPS:
    app.add_typer(_group.app)


def _version(value: bool) -> None:
    if value:
        say(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Record AI coding-agent sessions into repro packs and replay them hermetically in Docker."""


def main() -> None:
    app(prog_name="runner")
