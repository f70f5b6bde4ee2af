"""Whole-pack verbs of the privileged side: sign, check a signature, reveal the originals.

Inputs: a pack file and a keyring (sign, reveal) or public keys (check). Outputs: the signed manifest, a
`SignatureCheck`, the revealed secrets (and, on request, a folder with the pack's members decrypted and
every placeholder put back). Rules: the pack is fully verified before anything is signed, checked or
revealed; a revealed folder is written with 0700 permissions.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from runner.errors import PrivacyError
from runner.pack import build as pack_build
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.pack.manifest import Manifest, dump
from runner.privacy.crypto import Keyring, PublicKeys
from runner.privacy.mask import Secret
from runner.privacy.sign import SignatureCheck, check_signature, sign_manifest
from runner.privacy.unseal import reveal_text, sealed_secrets

__all__ = ["check_verified", "reveal", "sign_pack", "verify_pack"]


def sign_pack(pack: Path, keyring: Keyring) -> Manifest:
    """Add (or replace) `signature.json` in `pack`, signed with the keyring's newest key."""
    return pack_build.resign(pack, functools.partial(sign_manifest, keyring=keyring))


def verify_pack(pack: Path, keys: PublicKeys) -> SignatureCheck:
    """Check every member and the root, then the signature over the manifest and root; PrivacyError if not."""
    return check_verified(pack_read.verify(pack), keys)


def check_verified(report: pack_read.VerifyReport, keys: PublicKeys) -> SignatureCheck:
    """The signature check of a pack `pack_read.verify` reported on: PrivacyError if the pack is not intact,
    not signed, or not signed by `keys` over these exact manifest bytes and this root."""
    if not report.ok or report.manifest_sha256 is None:
        raise PrivacyError(report.problem or f"{report.pack}: not a valid repro pack")
    manifest = pack_summary.inspect(report.pack).manifest
    try:
        return check_signature(report.signature, manifest, report.manifest_sha256, keys)
    except PrivacyError as e:
        raise PrivacyError(f"{report.pack}: {e}") from e


def reveal(pack: Path, keyring: Keyring, out: Path | None = None) -> tuple[Secret, ...]:
    """The original value of every placeholder in `pack`. With `out` (absent or empty), also write the
    members there decrypted, with placeholders replaced by the originals: the privileged view."""
    with tempfile.TemporaryDirectory(prefix="runner-reveal-") as tmp:
        dest = Path(tmp) / "pack" if out is None else Path(out)
        unpacked = pack_read.unpack(pack, dest, keyring=keyring)
        found = sealed_secrets(unpacked.path, unpacked.manifest, keyring)
        if out is None:
            return found
        os.chmod(dest, 0o700)
        if unpacked.manifest.privacy.extra.get("sealed_manifest"):  # its command lines and env values back
            (dest / "manifest.yaml").write_text(dump(unpacked.manifest))
        for path in sorted(p for p in dest.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if b"REDACTED_" not in data:
                continue
            text = data.decode("utf-8", "surrogateescape")  # non-UTF-8 members were redacted this way
            revealed = reveal_text(path.relative_to(dest).as_posix(), text, found)
            path.write_bytes(revealed.encode("utf-8", "surrogateescape"))
        return found
