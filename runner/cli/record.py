"""`runner record -- AGENT...`: record any agent process into a repro pack.

Inputs: the agent command after `--` and options. Outputs: one line naming the pack and how the agent
ended. Exit codes: OK, INTERRUPTED after Ctrl-C (the pack then holds what was captured); errors via
`handles_errors`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import fail, handles_errors, say
from runner.errors import ExitCode, UsageError

__all__ = ["app"]

app = typer.Typer()


@app.command(
    "record",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handles_errors
def record_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="PACK", help="Where to write the pack (.tar.zst).")
    ],
    repo: Annotated[Path, typer.Option("--repo", help="The git repository the agent works in.")] = Path("."),
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check", help="A shell command run after the agent and recorded as a step. Repeatable."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Stop the agent after this many seconds.")
    ] = None,
    artifacts: Annotated[
        str,
        typer.Option(
            "--artifacts", help="all, or failing-only: keep blobs only for failing or slow sessions."
        ),
    ] = "all",
    slow_threshold: Annotated[
        float | None,
        typer.Option(
            "--slow-threshold", metavar="S", help="A session slower than S seconds keeps its artifacts."
        ),
    ] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Do not start the recording proxy.")] = False,
    record_loopback: Annotated[
        bool,
        typer.Option(
            "--record-loopback/--no-record-loopback",
            help="Record requests to localhost too (local model servers), so replay answers them offline.",
        ),
    ] = True,
    env_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--env-allow",
            metavar="NAME",
            help="Replay this variable verbatim, whatever it holds. Repeatable.",
        ),
    ] = None,
    env_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--env-secret", metavar="NAME", help="Keep this variable only as a placeholder. Repeatable."
        ),
    ] = None,
    capture_file: Annotated[
        list[str] | None,
        typer.Option(
            "--capture-file",
            metavar="PATH",
            help="A file of the agent's outside the repository (a config) to store and put back. Repeatable.",
        ),
    ] = None,
    upstream_ca: Annotated[
        Path | None,
        typer.Option("--upstream-ca", help="CA bundle verifying real servers (default: this machine's)."),
    ] = None,
    agent: Annotated[str, typer.Option("--agent", help="The agent's name in the manifest.")] = "agent",
    config_version: Annotated[
        str | None,
        typer.Option(
            "--config-version",
            metavar="V",
            help="The agent configuration version it runs under (runner config).",
        ),
    ] = None,
    history: Annotated[
        str,
        typer.Option(
            "--history",
            metavar="base|full|N",
            help="What the pack's git bundle carries: the base tree alone (base), all history, or N commits.",
        ),
    ] = "base",
) -> None:
    """Record any agent process into a repro pack: HTTP(S) through a recording proxy, the environment, the
    git base and dirty baseline, the agent's patch, and each --check command as a replayable step.

    Example: runner record --out fix.tar.zst --check "pytest -q" -- python my_agent.py --task fix-tests
    """
    # Imported here: the recorder is slow to import and only this command needs it.
    from runner.recorder import RecordOptions, record_command
    from runner.recorder.gitstate import parse_history

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError(
            "no agent command: put it after --, e.g. runner record --out s.tar.zst -- python agent.py"
        )
    if artifacts not in ("all", "failing-only"):
        raise UsageError(f"--artifacts {artifacts!r}: use all or failing-only")
    options = RecordOptions(
        agent=agent,
        config_version=config_version,
        http=not no_http,
        artifacts=artifacts,  # type: ignore[arg-type]
        slow_threshold=slow_threshold,
        record_loopback=record_loopback,
        upstream_ca=upstream_ca,
        env_allow=tuple(env_allow or ()),
        env_secret=tuple(env_secret or ()),
        history=parse_history(history),  # a bad value fails before the agent runs
    )
    result = record_command(
        argv, out, repo=repo, checks=check or [], timeout=timeout, options=options,
        capture_files=capture_file or (), finishing=_writing_status(out),
    )  # fmt: skip
    from rich.text import Text

    from runner.cli.common import err_console  # Rich's console: made once there is something to print

    summary = result.summary
    if result.interrupted:
        ended = "interrupted"
    elif result.agent_exit_code is None:
        ended = "killed at its --timeout"
    else:
        ended = f"exit {result.agent_exit_code}"
    say(f"wrote {summary.line()}; agent {ended}", soft_wrap=True)
    for warning in summary.warnings:  # on stderr: what was not recorded, and the flag that records it
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", warning), soft_wrap=True)
    if result.interrupted:
        raise fail(f"interrupted: {summary.path} holds what was captured before Ctrl-C", ExitCode.INTERRUPTED)


def _writing_status(out: Path) -> Callable[[], contextlib.AbstractContextManager[object]] | None:
    """A spinner on a terminal's stderr while the pack is written (redaction, compression, the bundle's
    secret scan: seconds for a long history or large outputs); nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None

    def status() -> contextlib.AbstractContextManager[object]:
        from rich.text import Text

        from runner.cli.common import err_console

        # A Text, not markup: the path is the user's and may hold brackets.
        return err_console.status(Text(f"writing {out} (redaction, compression, the git bundle)"))

    return status
