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


# --- cassette proxy -------------------------------------------------------------------------------

cassette_app = typer.Typer(help="Work with HTTP cassettes (cassettes/http.jsonl).", no_args_is_help=True)
app.add_typer(cassette_app, name="cassette")


@cassette_app.command("import")
@handles_errors
def cassette_import(
    source: Annotated[Path, typer.Argument(help="A vcrpy cassette (.yaml/.yml) or a HAR file (.har/.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The cassette to create.")] = Path("cassettes/http.jsonl"),
    redact_key: Annotated[
        str, typer.Option("--redact-key", envvar="RUNNER_REDACT_KEY", help="Key of the secret placeholders (hex or text).")
    ] = "",
) -> None:
    """Import a vcrpy cassette or a HAR file as a replayable cassette, secrets redacted.

    Example: runner cassette import tests/cassettes/test_chat.yaml --out cassettes/http.jsonl
    """
    from runner.cassette_import import import_recording

    count = import_recording(source, out, redact_key)
    console.print_json(json.dumps({"imported": count, "out": str(out)}))


def main() -> None:
    app(prog_name="runner")


if __name__ == "__main__":
    main()
