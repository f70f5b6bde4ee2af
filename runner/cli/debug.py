"""`runner debug`: replay the code behind one recorded span under pdb (time travel).

Inputs: a pack or traces file, the span, the function and --mock/--state options. Outputs: an interactive
pdb session. Errors and their exit codes go through `handles_errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import handles_errors
from runner.errors import UsageError

__all__ = ["app", "parse_mocks"]

app = typer.Typer()


def parse_mocks(items: list[str]) -> dict[str, str]:
    """The --mock options (span_type=import.path) as {span_type: import path}."""
    mocks: dict[str, str] = {}
    for item in items:
        span_type, sep, path = item.partition("=")
        if not sep or not span_type or not path:
            raise UsageError(
                f"--mock {item!r} must look like span_type=import.path (e.g. llm=agent.call_llm)"
            )
        mocks[span_type] = path
    return mocks


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
        typer.Option(
            "--state", help="Agent state for a Class.method: a checkpoint file or a typed JSON object."
        ),
    ] = None,
) -> None:
    """Replay the code behind one recorded span under pdb, with recorded responses served back.

    The function gets the span's recorded input, the clock starts at the span, random and uuid4 are seeded,
    and each --mock path returns the outputs recorded for its span type from that span on.

    Example: runner debug session.tar.zst --span 3f2a9c0d1e4b5a6f --function agent:Agent.step
    --mock llm=agent.llm.invoke --state before_step.ckpt
    """
    # Imported here: the time-travel machinery is slow to import and only this command needs it.
    from runner.debugging import debug_pack

    debug_pack(pack, span, function, mock_config=parse_mocks(mock or []), state_file=state)
