"""The recording proxy's CA, made one session ahead: a recording starts its agent without making a CA
(cryptography's import and the signature, ~60 ms before the agent may run).

Inputs: the session's confdir (the proxy's CA folder). Outputs: `claim(confdir)`, the CA of a waiting spare
moved there (None when none waits: the proxy then makes a fresh one, as before), and `make_spare()`, called
by a session's end, which makes the next session's spare unless one waits.
Rules:
- A spare is a CA (runner.cassettes.tls.make_ca: ECDSA P-256, its key 0600) that has served nothing, made in
  a private staging folder under `$RUNNER_HOME/spare-ca` (0700; default ~/.cache/runner) and renamed whole
  to `ready`.
- Claiming is the atomic rename of `ready` to a folder of the claiming session's own: of two sessions only
  one gets the spare, the other makes its own CA, so a CA never serves two sessions. Its files are then
  copied into the session's confdir (removed with the session's working folder) and the claimed folder is
  removed.
- A spare is taken only when it is a real folder (not a link) owned by this user and under a day old (its
  certificate is valid for 30 days from its making); anything else found there is removed, and so are
  staging and claimed folders over an hour old (a session killed between two steps).
- `RUNNER_SPARE_CA=0` turns spares off: every session then makes its CA before its agent starts. A spare is
  only a speed-up: failing to make or claim one is never an error of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from pathlib import Path

from runner.cassettes.tls import CertificateAuthority
from runner.engine.host import runner_home
from runner.errors import ProxyError

__all__ = ["claim", "make_spare"]

MAX_AGE_S = 24 * 3600
_CERT = "mitmproxy-ca-cert.pem"  # the certificate alone, as runner.cassettes.tls.make_ca lays it out


def _folder() -> Path | None:
    if os.environ.get("RUNNER_SPARE_CA", "1") == "0":
        return None
    return runner_home() / "spare-ca"


def claim(confdir: Path) -> CertificateAuthority | None:
    """The waiting spare's CA, moved into `confdir` (which must not exist yet); None when none waits."""
    folder = _folder()
    if folder is None:
        return None
    taken = folder / f"claimed-{os.urandom(8).hex()}"
    try:
        os.rename(folder / "ready", taken)
    except OSError:  # none waits, or another session took it first
        return None
    try:
        info = os.lstat(taken)
        cert = os.lstat(taken / _CERT)
        usable = (
            stat.S_ISDIR(info.st_mode)
            and info.st_uid == os.getuid()
            and stat.S_ISREG(cert.st_mode)
            and time.time() - cert.st_mtime < MAX_AGE_S
        )
        if not usable:
            return None
        shutil.copytree(taken, confdir, symlinks=True)
        return CertificateAuthority(confdir=confdir, cert_path=confdir / _CERT)
    except OSError:
        shutil.rmtree(confdir, ignore_errors=True)
        return None
    finally:
        _remove(taken)


def make_spare() -> None:
    """Make the next session's spare CA, unless one waits (or spares are off, or the folder is unusable)."""
    folder = _folder()
    if folder is None:
        return
    _sweep(folder)
    if (folder / "ready").exists():
        return
    from runner.cassettes.tls import make_ca  # cryptography: at a session's end, not before an agent

    staging = folder / f"staging-{os.urandom(8).hex()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.mkdir(staging, 0o700)
        make_ca(staging)
        os.rename(staging, folder / "ready")  # fails when another session's spare got there first
    except (OSError, ProxyError):  # a spare is only a speed-up
        pass
    finally:
        _remove(staging)


def _sweep(folder: Path) -> None:
    """Remove what a session killed between two steps left: staging and claimed folders over an hour old."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            left = entry.name.startswith(("staging-", "claimed-"))
            if left and time.time() - entry.stat(follow_symlinks=False).st_mtime > 3600:
                _remove(Path(entry.path))


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_symlink():
            path.unlink()
    shutil.rmtree(path, ignore_errors=True)
