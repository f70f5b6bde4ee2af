"""The privileged way back from a protected pack: the sealed originals, the payloads decrypted, the
placeholders put back.

Inputs: an unpacked pack's folder and manifest, a tenant keyring. Outputs: the sealed secrets
(`sealed_secrets`), a member's text with its placeholders back (`reveal_text`), the payload members
decrypted in place and the full manifest (`open_payloads`, which `pack.unpack` calls with a keyring).
Rules: nothing opens without the right key (PrivacyError naming the key ids); what the manifest lists is
checked against its members before any file is written; keys and sealing modules are imported only for a
pack that uses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.redact import PLACEHOLDER_RE
from runner.errors import PrivacyError
from runner.pack.manifest import Manifest, PatchStep
from runner.privacy.mask import SEALED_FORMAT, SEALED_MEMBER, Secret, rewrite_text
from runner.privacy.membertext import text_of

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring

__all__ = ["open_payloads", "reveal_text", "sealed_secrets"]


def sealed_secrets(folder: Path, manifest: Manifest, keyring: Keyring) -> tuple[Secret, ...]:
    """The original values of an unpacked pack's placeholders; PrivacyError without the right key."""
    if not manifest.privacy.extra.get("sealed"):
        raise PrivacyError(
            "this pack keeps no sealed originals (it was built without a keyring); nothing to reveal"
        )
    sealed = folder / SEALED_MEMBER
    if not sealed.is_file():
        raise PrivacyError(
            f"privacy.sealed names {SEALED_MEMBER}, which the pack does not hold; it is damaged"
        )
    from runner.privacy import crypto

    data = crypto.open_sealed(keyring, sealed.read_bytes(), SEALED_MEMBER)
    try:
        body = json.loads(data)
        if body.get("format") != SEALED_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        return tuple(Secret(str(s["token"]), str(s["kind"]), str(s["value"])) for s in body["secrets"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PrivacyError(f"{SEALED_MEMBER}: unreadable sealed secrets ({e}); the pack is damaged") from e


def reveal_text(name: str, text: str, secrets: Iterable[Secret]) -> str:
    """A member's text with every known placeholder back to its original value (JSON stays JSON)."""
    table = {s.token: s.value for s in secrets}

    def back(t: str) -> str:
        return PLACEHOLDER_RE.sub(lambda m: table.get(m.group(0), m.group(0)), t)

    return rewrite_text(name, text, back, lambda _, v: back(v))


def open_payloads(folder: Path, manifest: Manifest, keyring: Keyring | None) -> Manifest:
    """Decrypt an unpacked pack's sealed payload members in place (PrivacyError without a usable key);
    with a keyring, also put the original values back into its patches. Returns the full manifest (its
    sealed command lines and environment values back in place)."""
    _decrypt(folder, manifest, keyring)
    if keyring is None or not manifest.privacy.extra.get("sealed"):
        return manifest
    from runner.privacy import sealedmanifest

    manifest = sealedmanifest.restore(folder, manifest, keyring)
    found = sealed_secrets(folder, manifest, keyring)
    patches = [s.patch for s in manifest.steps if isinstance(s, PatchStep)]
    for name in [*patches, *([manifest.git.baseline_patch] if manifest.git.baseline_patch else [])]:
        path = folder / name
        text = text_of(path.read_bytes())
        if "REDACTED_" in text:
            path.write_bytes(reveal_text(name, text, found).encode("utf-8", "surrogateescape"))
    return manifest


def _decrypt(folder: Path, manifest: Manifest, keyring: Keyring | None) -> None:
    names = manifest.privacy.extra.get("encrypted_members") or []
    if not manifest.privacy.encrypted_payloads or not names:
        return
    if keyring is None:
        raise PrivacyError(
            "this pack's payloads are encrypted; pass the tenant keyring with --key FILE "
            f"(key id {', '.join(manifest.privacy.key_ids) or 'unknown'})"
        )
    from runner.privacy import crypto

    for name in names:
        if not isinstance(name, str) or name not in (
            manifest.integrity.members if manifest.integrity else {}
        ):
            raise PrivacyError(f"privacy.encrypted_members lists {name!r}, which is not a member of the pack")
        path = folder / name
        path.write_bytes(crypto.open_sealed(keyring, path.read_bytes(), name))
