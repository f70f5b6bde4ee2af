"""What every command module shares: the consoles, `fail`, `handles_errors`, shared options, live progress.

Inputs: none (module constants). Outputs: the helpers below. Rules: only the CLI prints and picks exit
codes, always as a `runner.errors.ExitCode`; text that comes from packs, errors or the user is printed with
markup off (see `say`, `cell`) because a `[` in a session name or a secret is data, not Rich markup.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from runner.errors import ExitCode, RunnerError
from runner.progress import LiveLog

__all__ = [
    "BASE_FROM_OPTION",
    "CA_BUNDLE_OPTION",
    "KEY_OPTION",
    "STORE_OPTION",
    "cell",
    "console",
    "err_console",
    "fail",
    "handles_errors",
    "live_progress",
    "say",
]

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True)
console = Console()

BASE_FROM_OPTION = typer.Option(
    None,
    "--base-from",
    envvar="RUNNER_BASE_FROM",
    metavar="IMAGE@sha256:DIGEST",
    help="Build the base FROM this digest-pinned registry image instead of debootstrapping it.",
)
CA_BUNDLE_OPTION = typer.Option(
    None,
    "--ca-bundle",
    exists=True,
    dir_okay=False,
    help="PEM bundle that pip inside builds trusts (default: $SSL_CERT_FILE, else $PIP_CERT).",
)
KEY_OPTION = typer.Option("--key", help="The tenant keyring file (from `runner keys new`).")
STORE_OPTION = typer.Option("--store", envvar="RUNNER_STORE", help="The store folder.")


def say(text: str, *, soft_wrap: bool = False) -> None:
    """Print one line of plain text on stdout: no markup, no highlighting."""
    console.print(text, markup=False, highlight=False, soft_wrap=soft_wrap)


def cell(text: str) -> Text:
    """A table cell holding `text` verbatim (a plain str cell would be parsed as markup)."""
    return Text(text)


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> typer.Exit:
    """Print a short error (one or two lines, no traceback) and return the Exit to raise."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn RunnerError into a one-line message and its exit code; Ctrl-C into INTERRUPTED."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RunnerError as e:
            raise fail(str(e), ExitCode(e.exit_code)) from None
        except KeyboardInterrupt:
            raise fail(
                "interrupted; temporary containers and folders were removed", ExitCode.INTERRUPTED
            ) from None

    return wrapper


def live_progress() -> LiveLog:
    """The live progress log of a long command, on stderr so stdout stays parseable."""
    return LiveLog(err_console)


def local_pack(arg: str) -> Path:
    """A pack argument as a local file: a path as given, or `oci://REF` pulled (once, by digest) into the cache."""
    from runner.store import oci

    return oci.resolve_pack(arg, warn=lambda text: err_console.print(f"warning: {text}", markup=False))
