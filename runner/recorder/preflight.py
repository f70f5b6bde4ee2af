"""Settings checked before a recording starts, so a bad one never costs the user the agent's session.

Inputs: the pack's path and the $RUNNER_* privacy settings (policy, keyring, encryption). Output:
`Checked`, whose `options()` gives the `PrivacyOptions` the pack is built with at the end.
Rules: each problem is one line (RecordError or PrivacyError, exit 2) naming the setting and what to do;
the probe file in the pack's folder is anonymous (an unlinked temporary file), so nothing is left there.
Only what must refuse runs before the agent starts (the policy's name, the keyring, encryption without a
keyring), on the light modules that check them (runner.privacy.policy's names, not its detectors, and
runner.privacy.crypto when there is a keyring);
`runner.privacy.mask` (the pack's schema, the scanner, ~0.15 s) is imported by `options()`, which the
session calls once the agent runs, reusing the keyring read here.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import RecordError

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring
    from runner.privacy.mask import PrivacyOptions

__all__ = ["Checked", "preflight"]

_KEYRING = "RUNNER_KEYRING"


@dataclass(frozen=True)
class Checked:
    """The $RUNNER_* settings as checked, and the keyring they name (None without one)."""

    environ: Mapping[str, str]
    keyring: Keyring | None

    def options(self) -> PrivacyOptions:
        """The pack's privacy options (imports runner.privacy.mask: call it once the agent runs)."""
        from runner.privacy.mask import PrivacyOptions

        settings = {k: v for k, v in self.environ.items() if k != _KEYRING}  # read once, by `preflight`
        return dataclasses.replace(PrivacyOptions.from_env(settings), keyring=self.keyring)


def preflight(out: Path, environ: Mapping[str, str] = os.environ) -> Checked:
    """Check the settings a session needs at its end before it starts (RecordError/PrivacyError, exit 2):
    a writable folder for the pack, the redaction policy and keyring of $RUNNER_*."""
    folder = out.parent
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise RecordError(f"--out {out}: {folder}: {what} for the pack; create it or change --out")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise RecordError(f"--out {out}: cannot write in {folder} ({e.strerror}); change --out") from None
    from runner.privacy import policy as policies

    settings = {k: v for k, v in environ.items() if k.startswith("RUNNER_")}
    policy = settings.get("RUNNER_REDACTION_POLICY", policies.DEFAULT_POLICY)
    if policy.lower() not in {"off", "none"}:  # as PrivacyOptions.from_env reads it
        policies.check(policy)
    ring = settings.get(_KEYRING)
    keyring = None
    if ring:
        from runner.privacy import crypto

        keyring = crypto.load_keyring(Path(ring))
    encrypt = settings.get("RUNNER_ENCRYPT_PAYLOADS", "").lower() in {"1", "true", "yes"}
    if encrypt and keyring is None:
        raise RecordError(
            "RUNNER_ENCRYPT_PAYLOADS needs a keyring: set RUNNER_KEYRING (see `runner keys new`)"
        )
    return Checked(settings, keyring)
