"""`runner doctor` and `runner images build|list|prune`: the Docker engine and the runner's own images.

Inputs: command-line options (prune: folders of packs whose images to keep). Outputs: the checkup, image
list or what prune removed (and the bytes freed) on stdout, progress on stderr. Exit codes: OK, ENVIRONMENT
when doctor finds something missing, BAD_INPUT for a bad pack to keep for (errors via `handles_errors`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import closing
from pathlib import Path
from typing import Annotated

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
from runner.engine.host import BuildTrust
from runner.errors import ExitCode, UsageError

__all__ = ["app"]

app = typer.Typer()
images_app = typer.Typer(
    help="Build, list and prune the runner's own images (offline base, proxy sidecar, environments).",
    no_args_is_help=True,
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
    from runner.engine import doctor

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
    from runner.engine import daemon, images

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
    from runner.engine import daemon, images, inventory

    with closing(daemon.connect()) as client:
        found = inventory.list_images(client, images.plan(base_from))
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


@images_app.command("prune")
@handles_errors
def images_prune_command(
    keep_for: Annotated[
        list[Path] | None,
        typer.Option(
            "--keep-for",
            metavar="DIR",
            help="Keep the environment images the packs in DIR need (repeatable).",
        ),
    ] = None,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing."),
    base_from: str | None = BASE_FROM_OPTION,
    only: Annotated[
        list[str] | None, typer.Option("--only", hidden=True, help="Consider only these tags.")
    ] = None,
) -> None:
    """Remove runner images nothing needs: base and proxy tags of old recipes, and environment images no
    pack in --keep-for needs (without it: those built on another base than the current one). Images a
    container uses and images that are not the runner's are never touched.

    Example: runner images prune --keep-for packs/golden --dry-run
    """
    from runner.engine import daemon, images, inventory
    from runner.replay import environment

    keep_for = keep_for or []
    for folder in keep_for:
        if not folder.is_dir():
            raise UsageError(f"--keep-for {folder}: not a folder of packs")
    packs = sorted({p for folder in keep_for for p in folder.rglob("*.tar.zst")})
    planned = images.plan(base_from)
    with closing(daemon.connect()) as client:
        base = next(p.tag for p in planned if p.name == "base")
        base_id = next((i.id for i in inventory.list_images(client) if base in i.tags), "")
        needed = environment.needed_tags(packs, base_id) if keep_for else None
        result = inventory.prune(
            client, current={p.tag for p in planned}, base_id=base_id, needed=needed, dry_run=dry_run,
            only=only or None,
        )  # fmt: skip
    verb = "would remove" if dry_run else "removed"
    lines = [
        f"kept {r.tag}: the engine refused ({r.refused})"
        if r.refused
        else f"{verb} {r.tag}  {r.id.removeprefix('sha256:')[:12]}  {r.freed / 1e6:.0f} MB  ({r.reason})"
        for r in result.removed
    ]
    lines += [f"kept {tag}: a container uses it" for tag in result.in_use]
    if needed is not None:
        lines.append(
            f"{len(packs)} pack(s) in {', '.join(map(str, keep_for))} need {len(needed)} environment image(s)"
        )
    total = f"{result.freed / 1e6:.0f} MB ({result.freed} bytes)"
    lines.append(f"{'would free' if dry_run else 'freed'} {total}; {result.kept} runner image tag(s) kept")
    for line in lines:
        say(line, soft_wrap=True)
