"""The `runner` command line: parses arguments, calls one stage verb, prints, and picks the exit code.

Only this module prints errors and chooses exit codes (see runner.errors for the tree):
0 every pack reproduced, 1 a replay diverged, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from runner import __version__
from runner.errors import RunnerError, UsageError

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


# ---------------------------------------------------------------------------------------------- debug


@app.command("debug")
@handles_errors
def debug_command(
    pack: Annotated[Path, typer.Argument(help="A repro pack (.tar.zst) or a plain traces.jsonl file.")],
    span: Annotated[str, typer.Option("--span", help="Id of the span to replay (16 hex digits).")],
    function: Annotated[
        str, typer.Option("--function", help="Code behind the span: module:function or module:Class.method.")
    ],
    mock: Annotated[
        list[str] | None,
        typer.Option("--mock", help="span_type=import.path: serve that type's recorded outputs. Repeatable."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Agent state for a Class.method: a checkpoint file or a typed JSON object."),
    ] = None,
) -> None:
    """Replay the code behind one recorded span under pdb, with recorded responses served back.

    The function gets the span's recorded input, the clock starts at the span, random and uuid4 are seeded,
    and each --mock path returns the outputs recorded for its span type from that span on.

    Example: runner debug session.tar.zst --span 3f2a9c0d1e4b5a6f --function agent:Agent.step
    --mock llm=agent.llm.invoke --state before_step.ckpt
    """
    from runner.debugging import debug_pack

    mock_config: dict[str, str] = {}
    for item in mock or []:
        span_type, sep, path = item.partition("=")
        if not sep or not span_type or not path:
            raise UsageError(f"--mock {item!r} must look like span_type=import.path (e.g. llm=agent.call_llm)")
        mock_config[span_type] = path
    debug_pack(pack, span, function, mock_config=mock_config, state_file=state)


def main() -> None:
    app(prog_name="runner")


if __name__ == "__main__":
    sys.exit(main())
