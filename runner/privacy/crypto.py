"""Tenant keyrings and authenticated encryption of pack members.

Inputs: a keyring file (JSON, written by `runner keys new` / `rotate`), bytes to seal and the name they are
sealed under. Outputs: sealed bytes (`RPKSEAL1` + key id + nonce + AES-256-GCM ciphertext), or the
plaintext back; public key files for signature checks.
Rules:
- A keyring holds one tenant's redaction key (HMAC key of the placeholders; it does not rotate, so one
  secret keeps one placeholder across rotations) and a list of keys, oldest first; each key has an id,
  a 256-bit AEAD key and an Ed25519 signing seed. New packs use the newest key; old packs open with
  whichever key their id names, so a rotated keyring still opens everything it sealed.
- The member name is the associated data: a sealed blob moved to another member does not open.
- A wrong key, an unknown key id or a flipped bit raise PrivacyError, never return garbage.
- Keyring files are written 0600, atomically, into a folder that must exist (it is never created: a
  typo must not scatter secret keys). A keyring file readable by group or others is refused on load,
  as ssh refuses a private key, with the chmod to run.
- Key files come from elsewhere: every field is checked (key ids are 16 hex digits, AEAD keys and
  signing seeds 32 bytes, Ed25519 public keys 32 bytes); a damaged file is a PrivacyError naming it.
- `cryptography` is imported when a key is first used, not with this module: packs built or read without
  keys do not pay for its import (about a tenth of a second).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import PrivacyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "SEAL_MAGIC",
    "Key",
    "Keyring",
    "PublicKeys",
    "is_sealed",
    "load_keyring",
    "load_public_keys",
    "new_keyring",
    "open_sealed",
    "rotate",
    "save_keyring",
    "seal",
    "sealed_key_id",
]

SEAL_MAGIC = b"RPKSEAL1"
_KEYRING_FORMAT = "runner-keyring/1"
_PUBKEYS_FORMAT = "runner-public-keys/1"
_ID_BYTES = 8
_NONCE = 12
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_RAW_KEY = 32  # bytes of an AES-256 key, an Ed25519 seed and an Ed25519 public key


@dataclass(frozen=True)
class Key:
    id: str  # 16 hex digits, derived from the AEAD key
    created_at: str
    aead: bytes  # 32 bytes, AES-256-GCM
    signing_seed: bytes  # 32 bytes, Ed25519 private key

    def signer(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.signing_seed)

    def public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.signer().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Keyring:
    tenant: str
    redaction_key: bytes
    keys: tuple[Key, ...]
    source: str = "keyring"  # where it was read from, for messages

    @property
    def newest(self) -> Key:
        return self.keys[-1]

    def key(self, key_id: str) -> Key:
        for k in self.keys:
            if k.id == key_id:
                return k
        raise PrivacyError(
            f"{self.source} (tenant {self.tenant}) holds no key {key_id}; "
            "use the keyring the pack was sealed with (rotated keyrings keep old keys)"
        )


@dataclass(frozen=True)
class PublicKeys:
    tenant: str
    keys: dict[str, bytes]  # key id -> raw Ed25519 public key
    source: str = "public keys"

    def verifier(self, key_id: str) -> Ed25519PublicKey | None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        raw = self.keys.get(key_id)
        return Ed25519PublicKey.from_public_bytes(raw) if raw else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_key(now: Callable[[], str]) -> Key:
    aead = secrets.token_bytes(32)
    key_id = hashlib.sha256(b"runner-key-id\n" + aead).hexdigest()[: 2 * _ID_BYTES]
    return Key(key_id, now(), aead, secrets.token_bytes(32))


def new_keyring(tenant: str, now: Callable[[], str] = _now) -> Keyring:
    if not tenant or not tenant.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise PrivacyError(f"tenant {tenant!r} must be letters, digits, '-', '_' or '.'")
    return Keyring(tenant, secrets.token_bytes(32), (_new_key(now),))


def rotate(keyring: Keyring, now: Callable[[], str] = _now) -> Keyring:
    """The keyring with one more key, which new packs use; old keys stay so old packs still open."""
    return replace(keyring, keys=(*keyring.keys, _new_key(now)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as e:
        raise PrivacyError(f"{source}: {what} is not valid base64; the key file is damaged") from e


def _write_private(path: Path, data: dict[str, Any], mode: int) -> None:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise PrivacyError(
            f"cannot write {path}: folder {folder} does not exist; create it first: mkdir -m 700 {folder}"
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    except OSError as e:
        raise PrivacyError(f"cannot write {path}: {e.strerror}; choose a folder you can write to") from e
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise PrivacyError(f"cannot write {path}: {e.strerror}; choose another path") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_keyring(keyring: Keyring, path: Path) -> Path:
    """Write the keyring (0600) and its public half next to it as PATH.pub; return the .pub path."""
    _write_private(
        path,
        {
            "format": _KEYRING_FORMAT,
            "tenant": keyring.tenant,
            "redaction_key": _b64(keyring.redaction_key),
            "keys": [
                {
                    "id": k.id,
                    "created_at": k.created_at,
                    "aead": _b64(k.aead),
                    "signing_seed": _b64(k.signing_seed),
                }
                for k in keyring.keys
            ],
        },
        0o600,
    )
    pub = Path(f"{path}.pub")
    _write_private(
        pub,
        {
            "format": _PUBKEYS_FORMAT,
            "tenant": keyring.tenant,
            "keys": [{"id": k.id, "ed25519": _b64(k.public_bytes())} for k in keyring.keys],
        },
        0o644,
    )
    return pub


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not JSON"
        raise PrivacyError(f"cannot read key file {path}: {reason}; {hint}") from e
    if not isinstance(data, dict):
        raise PrivacyError(f"{path} is not a key file; {hint}")
    return data


def _check_private(path: Path) -> None:
    """Refuse a secret keyring that group or others can read (or write), like ssh does."""
    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivacyError(
            f"keyring {path} is accessible by others (mode {stat.S_IMODE(mode):o}); "
            f"its keys may have leaked: run `chmod 600 {path}` (and rotate if others could read it)"
        )


def _keyring_from(data: dict[str, Any], src: str) -> Keyring:
    try:
        keys = tuple(
            Key(
                _key_id(k["id"], src),
                str(k["created_at"]),
                _unb64(k["aead"], "aead", src),
                _unb64(k["signing_seed"], "signing_seed", src),
            )
            for k in data["keys"]
        )
        keyring = Keyring(str(data["tenant"]), _unb64(data["redaction_key"], "redaction_key", src), keys, src)
    except (KeyError, TypeError) as e:
        raise PrivacyError(f"{src}: missing field {e} in the keyring; the key file is damaged") from e
    if not keys or any(len(k.aead) != _RAW_KEY or len(k.signing_seed) != _RAW_KEY for k in keys):
        raise PrivacyError(f"{src}: keys must be 32 bytes each and at least one must be present")
    return keyring


def _key_id(value: Any, src: str) -> str:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise PrivacyError(f"{src}: a key id must be 16 lower-case hex digits; the key file is damaged")
    return value


def load_keyring(path: Path) -> Keyring:
    hint = "create one with `runner keys new --tenant T --out FILE`"
    data = _read_json(path, hint)
    if data.get("format") != _KEYRING_FORMAT:
        raise PrivacyError(f"{path} is not a {_KEYRING_FORMAT} file; {hint}")
    _check_private(path)
    return _keyring_from(data, str(path))


def load_public_keys(path: Path) -> PublicKeys:
    """Public keys from a .pub file; a keyring file is accepted too (its public half is used)."""
    hint = "use the .pub file written next to the keyring"
    data = _read_json(path, hint)
    if data.get("format") == _KEYRING_FORMAT:
        ring = load_keyring(path)
        return PublicKeys(ring.tenant, {k.id: k.public_bytes() for k in ring.keys}, str(path))
    if data.get("format") != _PUBKEYS_FORMAT:
        raise PrivacyError(f"{path} is not a {_PUBKEYS_FORMAT} file; {hint}")
    src = str(path)
    try:
        keys = {_key_id(k["id"], src): _unb64(k["ed25519"], "ed25519", src) for k in data["keys"]}
        tenant = str(data["tenant"])
    except (KeyError, TypeError) as e:
        raise PrivacyError(f"{path}: missing field {e} in the public key file") from e
    if not keys or any(len(raw) != _RAW_KEY for raw in keys.values()):
        raise PrivacyError(f"{path}: public keys must be 32 bytes each and at least one must be present")
    return PublicKeys(tenant, keys, src)


def is_sealed(data: bytes) -> bool:
    return data.startswith(SEAL_MAGIC)


def seal(keyring: Keyring, plaintext: bytes, name: str) -> bytes:
    """Encrypt `plaintext` under the newest key, bound to `name` (the member it is stored as)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = keyring.newest
    kid = bytes.fromhex(key.id)
    nonce = secrets.token_bytes(_NONCE)
    head = SEAL_MAGIC + kid + nonce
    return head + AESGCM(key.aead).encrypt(nonce, plaintext, head + name.encode())


def sealed_key_id(data: bytes) -> str:
    return data[len(SEAL_MAGIC) : len(SEAL_MAGIC) + _ID_BYTES].hex()


def open_sealed(keyring: Keyring, data: bytes, name: str) -> bytes:
    """The plaintext of a sealed member; PrivacyError for a wrong key, another member's blob or a flipped bit."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    size = len(SEAL_MAGIC) + _ID_BYTES + _NONCE
    if not is_sealed(data) or len(data) < size + 16:
        raise PrivacyError(f"{name}: not a sealed member (bad header); the pack is damaged")
    key = keyring.key(sealed_key_id(data))
    head, nonce = data[:size], data[size - _NONCE : size]
    try:
        return AESGCM(key.aead).decrypt(nonce, data[size:], head + name.encode())
    except InvalidTag as e:
        raise PrivacyError(
            f"{name}: decryption failed under key {key.id}: the ciphertext was altered or belongs to another key"
        ) from e
