"""The `runner` command line: parses arguments, calls one stage verb, prints, and picks the exit code.

Only this module prints errors and chooses exit codes (see runner.errors for the tree):
0 every pack reproduced, 1 a replay diverged, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from runner import __version__
from runner import pack as pack_stage
from runner.errors import RunnerError

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True)
console = Console()

app = typer.Typer(
    name="runner",
    help="Record AI coding-agent sessions into repro packs and replay them hermetically in Docker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a short error (one or two lines, no traceback) and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn RunnerError into a one-line message and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RunnerError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; temporary containers and folders were removed", 130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Record AI coding-agent sessions into repro packs and replay them hermetically in Docker."""


# --- pack: inspect and verify ---------------------------------------------------------------------


@app.command(
    "inspect",
    help="Summarise a repro pack: session, agent, model parameters, steps, artifacts, sizes.\n\n"
    "Example: runner inspect session.tar.zst --json",
)
@handles_errors
def inspect_cmd(
    pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    summary = pack_stage.inspect(pack)
    if as_json:
        print(json.dumps(pack_stage.summary_dict(summary), indent=2))
    else:
        console.print(pack_stage.render_summary(summary))


@app.command(
    "verify",
    help="Check every member hash and the manifest's root digest; exit 0 when intact, 2 otherwise.\n\n"
    "Example: runner verify session.tar.zst",
)
@handles_errors
def verify_cmd(pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack.")]) -> None:
    report = pack_stage.verify(pack)
    if not report.ok:
        raise fail(report.problem or f"{pack}: not a valid repro pack")
    console.print(f"ok {pack}: {report.members_checked} members, {report.content_bytes} bytes", highlight=False)


def main() -> None:
    app(prog_name="runner")


if __name__ == "__main__":
    main()

