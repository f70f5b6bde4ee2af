"""`runner store put|list|hold|release|gc`: the local pack store with retention tiers and legal holds.

Inputs: packs, ids and options. Outputs: JSON on stdout (or a table for `list`). Errors and their exit
codes go through `handles_errors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from runner.cli.common import STORE_OPTION, cell, console, handles_errors
from runner.privacy.audit import principal

if TYPE_CHECKING:
    from runner.store.local import Store

__all__ = ["app"]

app = typer.Typer()
store_app = typer.Typer(help="A local pack store with retention tiers and legal holds.", no_args_is_help=True)
app.add_typer(store_app, name="store")

DEFAULT_STORE = Path("pack-store")


def _open(store: Path) -> Store:
    from runner.store.local import Store

    return Store(store)


@store_app.command("put")
@handles_errors
def store_put(
    packs: Annotated[list[Path], typer.Argument(metavar="PACK...", help="Packs to store.")],
    store: Annotated[Path, STORE_OPTION] = DEFAULT_STORE,
) -> None:
    """Verify and store packs under their root digest (storing one twice keeps one copy).

    Example: runner store put session.tar.zst --store /srv/packs
    """
    s = _open(store)
    print(json.dumps([s.put(p).to_dict() for p in packs], indent=2))


@store_app.command("list")
@handles_errors
def store_list(
    store: Annotated[Path, STORE_OPTION] = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """List stored packs with their tier and hold.

    Example: runner store list --store /srv/packs --json
    """
    entries = _open(store).entries()
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    table = Table("id", "session", "added", "tier", "hold", box=None)
    for e in entries:
        table.add_row(
            e.id[:16], cell(e.session), cell(e.added_at), cell(e.tier), cell(e.hold.reason if e.hold else "")
        )
    console.print(table)


@store_app.command("hold")
@handles_errors
def store_hold(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="Root digest (or a unique prefix) of a stored pack.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why it must be kept (ticket, case).")],
    store: Annotated[Path, STORE_OPTION] = DEFAULT_STORE,
) -> None:
    """Put a stored pack under legal hold: gc never deletes or downgrades it until released.

    Example: runner store hold 3f2a9c0d --reason "incident 42" --store /srv/packs
    """
    print(json.dumps(_open(store).hold(id, reason, principal()).to_dict(), indent=2))


@store_app.command("release")
@handles_errors
def store_release(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="Root digest (or a unique prefix) of a stored pack.")
    ],
    store: Annotated[Path, STORE_OPTION] = DEFAULT_STORE,
) -> None:
    """Release a legal hold; retention applies again from the next gc.

    Example: runner store release 3f2a9c0d --store /srv/packs
    """
    print(json.dumps(_open(store).release(id).to_dict(), indent=2))


@store_app.command("gc")
@handles_errors
def store_gc(
    store: Annotated[Path, STORE_OPTION] = DEFAULT_STORE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be dropped; change nothing.")
    ] = False,
    full_days: Annotated[float, typer.Option("--full-days", help="Keep whole packs this long.")] = 7,
    traces_days: Annotated[
        float, typer.Option("--traces-days", help="Keep manifest + traces this long.")
    ] = 90,
    audit_days: Annotated[
        float, typer.Option("--audit-days", help="Keep the audit summary this long.")
    ] = 365,
) -> None:
    """Apply retention: whole pack, then manifest + traces, then audit summary only, then nothing.

    Example: runner store gc --store /srv/packs --dry-run
    """
    from runner.store.local import Retention

    actions = _open(store).gc(Retention.from_days(full_days, traces_days, audit_days), dry_run=dry_run)
    print(json.dumps({"dry_run": dry_run, "actions": [vars(a) for a in actions]}, indent=2))
