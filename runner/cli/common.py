"""What every command module shares: the consoles, `fail`, `handles_errors`, shared options, live progress.

Inputs: none (module constants). Outputs: the helpers below. Rules: only the CLI prints and picks exit
codes, always as a `runner.errors.ExitCode`. Text that comes from packs, errors or the user is data: the
consoles here never read Rich markup or emoji codes (a `[/x]` in an agent name neither crashes a command nor
restyles a message, a `[link=...]` rewrites nothing), and every string they print goes through
`runner.display.visible`, so control characters from a pack show as `\\x1b` instead of driving the terminal.
Rich's console is imported when something is first printed (`console` and `err_console` are made on first
access): `runner record` spawns its agent before it prints anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from runner.display import visible, visible_text
from runner.errors import ExitCode, RunnerError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from runner.progress import LiveLog  # imported by the commands that show progress (Rich's live display)

    console: Console
    err_console: Console

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


@functools.cache
def _plain_console(stderr: bool) -> Console:
    """A console that prints strings as data: no markup, no emoji codes, control characters made visible.

    Every `str` a renderable holds (a table cell, a title, `print`'s arguments) passes through `render_str`;
    `Text` values are the callers' to build with `visible_text`."""
    from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod
    from rich.style import Style

    class _PlainConsole(Console):
        def render_str(
            self,
            text: str,
            *,
            style: str | Style = "",
            justify: JustifyMethod | None = None,
            overflow: OverflowMethod | None = None,
            emoji: bool | None = None,
            markup: bool | None = None,
            highlight: bool | None = None,
            highlighter: HighlighterType | None = None,
        ) -> Text:
            return super().render_str(
                visible(text, newlines=True),
                style=style,
                justify=justify,
                overflow=overflow,
                emoji=False,
                markup=False,
                highlight=highlight,
                highlighter=highlighter,
            )

    return _PlainConsole(stderr=stderr, markup=False, emoji=False)


def __getattr__(name: str) -> Any:
    if name not in ("console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()[name] = _plain_console(stderr=name == "err_console")
    return made


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


def say(text: str, *, soft_wrap: bool = True) -> None:
    """Print one line of plain text on stdout: no markup, no highlighting, control characters visible, and
    no line breaks inserted at the terminal's width (scripts read these lines)."""
    _plain_console(stderr=False).print(visible_text(text), highlight=False, soft_wrap=soft_wrap)


def cell(text: str) -> Text:
    """A table cell holding `text` as data: never markup, control characters (newlines too) visible."""
    return visible_text(text)


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> typer.Exit:
    """Print a short error (one or two lines, no traceback) and return the Exit to raise.

    The message often quotes a pack or a tool; its control characters are shown, not obeyed (line breaks
    stay: some errors end with the last lines of a log)."""
    from rich.text import Text

    _plain_console(stderr=True).print(
        Text.assemble(("error:", "bold red"), " ", visible_text(message, newlines=True)),
        highlight=False,
        soft_wrap=True,
    )
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
    from runner.progress import LiveLog

    return LiveLog(_plain_console(stderr=True))


def local_pack(arg: str) -> Path:
    """A pack argument as a local file: a path as given, or `oci://REF` pulled (once, by digest) into the cache."""
    if not arg.startswith("oci://"):  # the store's OCI client is imported only for the packs it serves
        return Path(arg)
    from runner.store import oci

    return oci.resolve_pack(arg, warn=lambda text: _plain_console(stderr=True).print(f"warning: {text}"))
