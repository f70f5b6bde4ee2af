"""`runner inspect` and `runner verify`: read a repro pack, summarise it, check its integrity.

Inputs: a pack path and options. Outputs: the summary (text or JSON) or a one-line verdict on stdout.
Exit codes: OK, or BAD_INPUT for a pack that is not intact or whose signature fails (errors via
`handles_errors`). `verify` prints exactly one line, after every check it was asked for, and that line says
what was checked: intact and not signed; intact with a signature it did not check; intact and signed by whom.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from runner.cli import privacy
from runner.cli.common import console, fail, handles_errors, local_pack, say

__all__ = ["app"]

app = typer.Typer()


@app.command(
    "inspect",
    help="Summarise a repro pack: session, agent, model parameters, steps, artifacts, sizes.\n\n"
    "Example: runner inspect session.tar.zst --json",
)
@handles_errors
def inspect_cmd(
    pack_arg: Annotated[
        str, typer.Argument(metavar="PACK", help="The .tar.zst repro pack, or oci://REF[@sha256:DIGEST].")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Privileged view: show the original value of every placeholder.")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", help="The tenant keyring (needed by --reveal).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="With --reveal: write the members here, decrypted, placeholders restored."
        ),
    ] = None,
) -> None:
    from runner.pack import summary

    pack = local_pack(pack_arg)
    if reveal:
        privacy.show_revealed(pack, key, out, as_json)
        return
    found = summary.inspect(pack)
    if as_json:
        print(json.dumps(summary.summary_dict(found), indent=2))
    else:
        console.print(summary.render_summary(found))


@app.command(
    "verify",
    help="Check every member hash and the manifest's root digest; exit 0 when intact, 2 otherwise.\n\n"
    "Example: runner verify session.tar.zst",
)
@handles_errors
def verify_cmd(
    pack_arg: Annotated[
        str, typer.Argument(metavar="PACK", help="The .tar.zst repro pack, or oci://REF[@sha256:DIGEST].")
    ],
    pubkey: Annotated[
        Path | None,
        typer.Option("--pubkey", help="Also check signature.json against these public keys (KEYRING.pub)."),
    ] = None,
) -> None:
    from runner.pack import read

    pack = local_pack(pack_arg)
    report = read.verify(pack)
    if not report.ok:
        raise fail(report.problem or f"{pack}: not a valid repro pack")
    intact = f"ok {pack}: intact, {report.members_checked} members, {report.content_bytes} bytes"
    if pubkey is not None:
        verdict = privacy.signature_line(report, pubkey)
    elif report.signature is None:
        verdict = "not signed"
    else:
        verdict = "signature present but not checked (pass --pubkey KEYRING.pub)"
    say(f"{intact}; {verdict}", soft_wrap=True)
