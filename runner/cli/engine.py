"""`runner doctor` and `runner images build|list`: the Docker engine and the runner's own images.

Inputs: command-line options. Outputs: the checkup or image list on stdout, progress on stderr.
Exit codes: OK, or ENVIRONMENT when doctor finds something missing (errors via `handles_errors`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import closing
from pathlib import Path

import typer
from rich.table import Table

from runner.cli.common import (
    BASE_FROM_OPTION,
    CA_BUNDLE_OPTION,
    cell,
    console,
    handles_errors,
    live_progress,
    say,
)
from runner.engine import daemon, doctor, images
from runner.engine.host import BuildTrust
from runner.errors import ExitCode

__all__ = ["app"]

app = typer.Typer()
images_app = typer.Typer(
    help="Build and list the runner's own images (offline base, proxy sidecar).", no_args_is_help=True
)
app.add_typer(images_app, name="images")


@app.command("doctor")
@handles_errors
def doctor_command(
    fix: bool = typer.Option(False, "--fix", help="Install/start the engine and build missing images."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
) -> None:
    """Check the Docker engine, the runner's images and Python libraries; exit 3 when something is missing.

    Example: runner doctor --fix
    """
    if as_json:
        found = doctor.check(fix, base_from=base_from, ca_bundle=ca_bundle)
        console.print_json(json.dumps(found.to_json()))
    else:
        with live_progress() as live:
            found = doctor.check(fix, base_from=base_from, ca_bundle=ca_bundle, progress=live)
        console.print(doctor.render_checkup(found))
    if not found.ok:
        raise typer.Exit(ExitCode.ENVIRONMENT)


@images_app.command("build")
@handles_errors
def images_build_command(
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
    force: bool = typer.Option(False, "--force", help="Rebuild even when the tags exist."),
) -> None:
    """Build the base and proxy images; an unchanged recipe is not rebuilt.

    Example: runner images build --ca-bundle /etc/ssl/certs/ca-certificates.crt
    """
    if base_from:
        images.check_base_from(base_from)
    trust = BuildTrust.from_host(ca_bundle)
    started = time.monotonic()
    with closing(daemon.connect()) as client, live_progress() as live:
        built = images.ensure(client, base_from=base_from, trust=trust, force=force, progress=live)
    for ref in (built.base, built.proxy):
        state = "built" if ref.built else "up to date"
        say(f"{ref.tag}  {ref.id[:19]}  {state}")
    if not (built.base.built or built.proxy.built):
        say(f"images are up to date ({time.monotonic() - started:.1f}s)")


@images_app.command("list")
@handles_errors
def images_list_command(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    base_from: str | None = BASE_FROM_OPTION,
) -> None:
    """List the images the runner made; `*` marks those the current recipes call for.

    Example: runner images list --json
    """
    with closing(daemon.connect()) as client:
        found = images.list_images(client, images.plan(base_from))
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(info) for info in found]))
        return
    table = Table("", "id", "size", "created", box=None)
    table.add_column("tag", no_wrap=True)
    for info in found:
        table.add_row(
            "*" if info.current else "", info.id.removeprefix("sha256:")[:12], f"{info.size / 1e6:.0f} MB",
            cell(info.created[:16]), cell(", ".join(info.tags)),
        )  # fmt: skip
    console.print(table)
