"""`runner cassette import`: turn a vcrpy cassette or a HAR file into a replayable cassette.

Inputs: the recording and options. Outputs: a JSON line with the count and the cassette written.
Errors and their exit codes go through `handles_errors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import console, handles_errors

__all__ = ["MAX_IMPORT_MIB", "app"]

# runner.cassettes.importers.MAX_IMPORT_BYTES in MiB, spelled out so that `runner --help` need not import
# the importers (mitmproxy, yaml); tests/cli/test_imports.py checks the two agree.
MAX_IMPORT_MIB = 256

app = typer.Typer()
cassette_app = typer.Typer(help="Work with HTTP cassettes (cassettes/http.jsonl).", no_args_is_help=True)
app.add_typer(cassette_app, name="cassette")


@cassette_app.command("import")
@handles_errors
def cassette_import(
    source: Annotated[Path, typer.Argument(help="A vcrpy cassette (.yaml/.yml) or a HAR file (.har/.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The cassette to create.")] = Path(
        "cassettes/http.jsonl"
    ),
    redact_key: Annotated[
        str,
        typer.Option(
            "--redact-key", envvar="RUNNER_REDACT_KEY", help="Key of the secret placeholders (hex or text)."
        ),
    ] = "",
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists (atomically).")] = False,
    max_mib: Annotated[
        int, typer.Option("--max-mib", min=1, help="Refuse a recording larger than this many MiB.")
    ] = MAX_IMPORT_MIB,
) -> None:
    """Import a vcrpy cassette or a HAR file as a replayable cassette, secrets redacted.

    Example: runner cassette import tests/cassettes/test_chat.yaml --out cassettes/http.jsonl
    """
    from runner.cassettes.importers import import_recording

    count = import_recording(source, out, redact_key, force=force, max_bytes=max_mib * 2**20)
    console.print_json(json.dumps({"imported": count, "out": str(out)}))
