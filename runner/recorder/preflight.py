"""Settings checked before a recording starts, so a bad one never costs the user the agent's session.

Inputs: the pack's path and the $RUNNER_* privacy settings (policy, keyring, encryption). Output: the
`PrivacyOptions` the pack is built with at the end. Rules: each problem is one line (RecordError or
PrivacyError, exit 2) naming the setting and what to do; the probe file in the pack's folder is anonymous
(an unlinked temporary file), so nothing is left there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import RecordError

if TYPE_CHECKING:
    from runner.privacy.mask import PrivacyOptions

__all__ = ["preflight"]


def preflight(out: Path) -> PrivacyOptions:
    """Check the settings a session needs at its end before it starts (RecordError/PrivacyError, exit 2):
    a writable folder for the pack, the redaction policy and keyring of $RUNNER_*. Returns the latter."""
    folder = out.parent
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise RecordError(f"--out {out}: {folder}: {what} for the pack; create it or change --out")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise RecordError(f"--out {out}: cannot write in {folder} ({e.strerror}); change --out") from None
    # Imported here (~0.2 s: the pack's schema, cryptography): `runner record` runs this alongside git.
    from runner.privacy.mask import PrivacyOptions
    from runner.privacy.policy import get as get_policy

    privacy = PrivacyOptions.from_env()
    if privacy.policy is not None:
        get_policy(privacy.policy)
    if privacy.encrypt_payloads and privacy.keyring is None:
        raise RecordError(
            "RUNNER_ENCRYPT_PAYLOADS needs a keyring: set RUNNER_KEYRING (see `runner keys new`)"
        )
    return privacy
