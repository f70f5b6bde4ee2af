"""`runner push` and `runner pull`: share repro packs through an OCI registry (see docs/oci.md).

Inputs: command-line arguments. Outputs: one line on stdout (`REF@sha256:...`, or the file written).
Rules: they raise runner.errors exceptions (UsageError, PackError, RegistryError); `handles_errors` turns
them into one line and the exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli.common import handles_errors
from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.store import oci

__all__ = ["app", "pull_command", "push_command"]

app = typer.Typer()

_INSECURE_HELP = (
    "Allow plain HTTP to a registry that is not on this machine (loopback registries always use it). "
    "Example: --insecure-http"
)
_REF_HELP = "host[:port]/repository[:tag]"
_VERDICTS: dict[str, oci.Verdict] = {"reproduced": "reproduced", "diverged": "diverged", "error": "error"}


@app.command("push")
@handles_errors
def push_command(
    pack: Annotated[
        Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack. Example: session.tar.zst")
    ],
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help=f"Where to push: {_REF_HELP} (tag `latest` when none). "
            "Example: registry.example.com/team/packs:nightly",
        ),
    ],
    verdict: Annotated[
        str | None,
        typer.Option(
            "--verdict",
            help="The verdict of the last replay, recorded as an annotation. Example: --verdict reproduced",
        ),
    ] = None,
    insecure_http: Annotated[bool, typer.Option("--insecure-http", help=_INSECURE_HELP)] = False,
) -> None:
    """Push a verified pack to an OCI registry and print REF@sha256:DIGEST.

    Example: runner push session.tar.zst 127.0.0.1:5000/team/packs:nightly
    """
    from runner.store import oci

    if verdict is not None and verdict not in _VERDICTS:
        raise UsageError(f"--verdict must be one of {', '.join(_VERDICTS)}, not {verdict!r}")
    if not pack.is_file():
        raise UsageError(f"{pack}: no such pack file")
    pushed = oci.push(pack, ref, verdict=_VERDICTS[verdict] if verdict else None, insecure_http=insecure_http)
    typer.echo(str(pushed.reference))


@app.command("pull")
@handles_errors
def pull_command(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help=f"What to pull: {_REF_HELP}[@sha256:DIGEST]; with a digest the tag is ignored. "
            "Example: 127.0.0.1:5000/team/packs@sha256:0123...",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where to write the verified pack. Example: --out session.tar.zst"),
    ],
    insecure_http: Annotated[bool, typer.Option("--insecure-http", help=_INSECURE_HELP)] = False,
) -> None:
    """Pull a pack, check its digests and the pack itself, then write it (atomically) to --out.

    Example: runner pull 127.0.0.1:5000/team/packs:nightly --out session.tar.zst
    """
    from runner.store import oci

    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name the pack file to write")
    pulled = oci.pull(ref.removeprefix(oci.OCI_PREFIX), out, insecure_http=insecure_http)
    typer.echo(f"wrote {pulled.path} from {pulled.reference}")
