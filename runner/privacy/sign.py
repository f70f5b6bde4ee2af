"""Chain of custody: an Ed25519 signature over a pack's exact manifest bytes and root digest, checked offline.

Input: a checked manifest (its `integrity` root and member list) and a tenant keyring; to check, the
bytes of `signature.json`, the sha256 of the pack's manifest.yaml bytes and public keys. Output: the
signature member's bytes; a `SignatureCheck`.
Rules:
- The signed payload is an in-toto Statement (v1): one subject per member with its sha256, plus
  `manifest.yaml` with the sha256 of its exact bytes; the predicate names the root digest, the session and
  the signing time; it travels in a DSSE envelope, signed over DSSE's pre-authentication encoding, so the
  payload type is signed too.
- The manifest's bytes are signed, not its parsed form: the root digest covers what the manifest means,
  the bytes cover how it is written, so not even a comment can be added to a signed pack. `sign_manifest`
  signs `manifest.dump(m)`, the exact bytes `PackBuilder.build` writes for `m`.
- `signature.json` is not listed in `integrity` (it signs the root, so the root cannot cover it); a change
  to any member or manifest byte changes the root or the manifest's hash, and the statement no longer
  matches the pack.
- Any doubt is a PrivacyError: an unknown key id, a bad signature, a statement for another root, another
  member list or other manifest bytes, a statement without the manifest's hash (an older runner's).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from runner.errors import PrivacyError
from runner.pack import manifest as mf
from runner.pack.layout import MANIFEST
from runner.pack.manifest import Manifest
from runner.privacy.crypto import Keyring, PublicKeys

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "SignatureCheck",
    "check_signature",
    "sign_manifest",
    "statement",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "repro-pack-custody/v1"


@dataclass(frozen=True)
class SignatureCheck:
    key_id: str
    tenant: str
    root: str
    signed_at: str
    subjects: int


def _pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _subjects(manifest: Manifest, manifest_sha256: str) -> dict[str, str]:
    assert manifest.integrity is not None
    return {MANIFEST: manifest_sha256} | {name: d.sha256 for name, d in manifest.integrity.members.items()}


def statement(manifest: Manifest, signed_at: str, manifest_sha256: str | None = None) -> dict[str, Any]:
    """The in-toto statement for a built manifest; `manifest_sha256` defaults to that of `dump(manifest)`."""
    if manifest.integrity is None:
        raise PrivacyError("only a built pack (with an integrity section) can be signed")
    if manifest_sha256 is None:
        manifest_sha256 = hashlib.sha256(mf.dump(manifest).encode()).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest}}
            for name, digest in sorted(_subjects(manifest, manifest_sha256).items())
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "root": {"sha256": manifest.integrity.root},
            "session": manifest.session.id,
            "signed_at": signed_at,
        },
    }


def sign_manifest(manifest: Manifest, keyring: Keyring, signed_at: str | None = None) -> bytes:
    """The bytes of `signature.json` for a built manifest written as `dump(manifest)`, signed with the
    keyring's newest key."""
    when = signed_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = json.dumps(statement(manifest, when), sort_keys=True, separators=(",", ":")).encode()
    key = keyring.newest
    sig = key.signer().sign(_pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.id, "tenant": keyring.tenant, "sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps(envelope, indent=2).encode() + b"\n"


def check_signature(
    data: bytes | None, manifest: Manifest, manifest_sha256: str, keys: PublicKeys
) -> SignatureCheck:
    """Check `signature.json` against the pack's (already verified) manifest and the sha256 of its exact
    bytes; PrivacyError if it fails."""
    if data is None:
        raise PrivacyError(
            "the pack is not signed (no signature.json); sign it with `runner sign PACK --key FILE`"
        )
    from cryptography.exceptions import InvalidSignature  # with the keys, not with this module (`crypto`)

    if manifest.integrity is None:
        raise PrivacyError("the manifest has no integrity section; nothing to check the signature against")
    try:
        envelope = json.loads(data)
        payload = base64.b64decode(envelope["payload"], validate=True)
        entries = envelope["signatures"]
        if envelope["payloadType"] != PAYLOAD_TYPE or not isinstance(entries, list):
            raise ValueError("unexpected payload type")
    except (ValueError, KeyError, TypeError) as e:
        raise PrivacyError(f"signature.json is malformed ({e}); the signature was damaged or forged") from e
    tried = []
    for entry in entries:
        key_id = str(entry.get("keyid")) if isinstance(entry, dict) else "?"
        verifier = keys.verifier(key_id)
        tried.append(key_id)
        if verifier is None:
            continue
        try:
            verifier.verify(
                base64.b64decode(str(entry.get("sig")), validate=True), _pae(PAYLOAD_TYPE, payload)
            )
        except (InvalidSignature, ValueError) as e:
            raise PrivacyError(
                f"signature by key {key_id} does not verify: signature.json was altered or forged"
            ) from e
        return _check_statement(payload, manifest, manifest_sha256, key_id, keys.tenant)
    raise PrivacyError(
        f"signed by key {', '.join(tried) or '(none)'}, which {keys.source} (tenant {keys.tenant}) does not hold"
    )


def _check_statement(
    payload: bytes, manifest: Manifest, manifest_sha256: str, key_id: str, tenant: str
) -> SignatureCheck:
    assert manifest.integrity is not None
    try:
        body = json.loads(payload)
        root = body["predicate"]["root"]["sha256"]
        subjects = {s["name"]: s["digest"]["sha256"] for s in body["subject"]}
        signed_at = str(body["predicate"]["signed_at"])
    except (ValueError, KeyError, TypeError) as e:
        raise PrivacyError(f"the signed statement is malformed ({e})") from e
    if root != manifest.integrity.root:
        raise PrivacyError(
            f"the signature covers root {str(root)[:16]}..., the pack's root is {manifest.integrity.root[:16]}...: "
            "the pack was changed after it was signed"
        )
    if MANIFEST not in subjects:
        raise PrivacyError(
            "the signature does not cover the manifest's exact bytes (an older runner made it): "
            "sign the pack again with `runner sign PACK --key FILE`"
        )
    if subjects[MANIFEST] != manifest_sha256:
        raise PrivacyError(
            "manifest.yaml differs from the bytes that were signed: the pack was changed after it was signed"
        )
    if subjects != _subjects(manifest, manifest_sha256):
        raise PrivacyError(
            "the signed member list differs from the pack's: the pack was changed after signing"
        )
    return SignatureCheck(key_id, tenant, root, signed_at, len(subjects) - 1)
