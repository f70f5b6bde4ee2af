"""`runner sign`, `runner keys new|rotate`, and the privileged views that `inspect --reveal` and
`verify --pubkey` print: tenant keyrings, signatures, revealed placeholders.

Inputs: packs, keyring files and options. Outputs: JSON or plain lines on stdout; revealed values are
printed verbatim (never as markup). Errors and their exit codes go through `handles_errors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from runner.cli.common import KEY_OPTION, cell, console, handles_errors, say
from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.pack.read import VerifyReport

__all__ = ["app", "show_revealed", "signature_line"]

app = typer.Typer()
keys_app = typer.Typer(help="Tenant keyrings: redaction, encryption and signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def show_revealed(pack: Path, key: Path | None, out: Path | None, as_json: bool) -> None:
    """`runner inspect --reveal`: every placeholder with its original value; members restored into OUT."""
    from runner.privacy import access, crypto

    if key is None:
        raise UsageError("--reveal needs the tenant keyring: --key FILE")
    found = access.reveal(pack, crypto.load_keyring(key), out)
    if as_json:
        print(
            json.dumps(
                {"pack": str(pack), "out": str(out) if out else None, "secrets": [vars(s) for s in found]}
            )
        )
        return
    table = Table(title=f"{len(found)} redacted value(s)")
    for column in ("placeholder", "kind", "original value"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(cell(s.token), cell(s.kind), cell(s.value))
    console.print(table)
    if out:
        say(f"members decrypted and restored in {out}")


def signature_line(report: VerifyReport, pubkey: Path) -> str:
    """`runner verify --pubkey`: check signature.json of a verified pack against the public keys and say who
    signed what (PrivacyError, printed by `handles_errors`, when the check fails)."""
    from runner.privacy import access, crypto

    check = access.check_verified(report, crypto.load_public_keys(pubkey))
    return (
        f"signature ok: key {check.key_id} (tenant {check.tenant}) signed the manifest's bytes and root "
        f"{check.root[:16]}... at {check.signed_at}"
    )


@keys_app.command("new")
@handles_errors
def keys_new(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the keys belong to.")],
    out: Annotated[
        Path, typer.Option("--out", help="Keyring file to create (0600); FILE.pub is written too.")
    ],
) -> None:
    """Create a tenant keyring: a redaction key, and an encryption + signing key pair.

    Example: runner keys new --tenant acme --out acme.keys
    """
    from runner.privacy import crypto

    if out.exists():
        raise UsageError(f"{out} exists; use `runner keys rotate {out}` to add a key")
    ring = crypto.new_keyring(tenant)
    pub = crypto.save_keyring(ring, out)
    console.print_json(json.dumps({"keyring": str(out), "public": str(pub), "key_id": ring.newest.id}))


@keys_app.command("rotate")
@handles_errors
def keys_rotate(
    keyring: Annotated[Path, typer.Argument(metavar="FILE", help="The keyring to rotate.")],
) -> None:
    """Add a new key that new packs use; old keys stay so old packs still open and verify.

    Example: runner keys rotate acme.keys
    """
    from runner.privacy import crypto

    ring = crypto.rotate(crypto.load_keyring(keyring))
    crypto.save_keyring(ring, keyring)
    console.print_json(json.dumps({"keyring": str(keyring), "key_ids": [k.id for k in ring.keys]}))


@app.command("sign")
@handles_errors
def sign_cmd(
    pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack to sign in place.")],
    key: Annotated[Path, KEY_OPTION],
) -> None:
    """Sign a pack's root digest (Ed25519, in-toto statement) into its signature.json.

    Example: runner sign session.tar.zst --key acme.keys && runner verify session.tar.zst --pubkey acme.keys.pub
    """
    from runner.privacy import access, crypto

    ring = crypto.load_keyring(key)
    signed = access.sign_pack(pack, ring)
    root = signed.integrity.root if signed.integrity else ""
    say(f"signed {pack}: root {root[:16]}... with key {ring.newest.id}")
