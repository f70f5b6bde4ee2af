"""The proxy sidecar's entry point: the proxy program imported ahead, then run with the arguments a replay hands it.

Input: `python -m proxy.claim FOLDER IDLE_SECONDS`; FOLDER is the sidecar's folder (a host folder mounted
in the container), where the replay that claims this sidecar writes `claim.json`, a JSON object
`{"argv": [str, ...]}`, whole (by rename). Output: the proxy (`proxy.main`: mitmproxy with the cassette
addon) runs in this process with those arguments, exactly as `python proxy/main.py ARGV` would; exit 0 when
IDLE_SECONDS pass with no claim (a spare sidecar is started with auto-remove, so nothing lingers).
Rules: mitmproxy and the cassette addon are imported before the wait, so a claimed proxy listens a
fraction of a second after its claim instead of after mitmproxy's own import, the bulk of its start. The
claim is read once; a claim that is not that object exits 2 with one line on stderr. SIGTERM while waiting
exits at once (PID 1 of a container has no default handler); once the proxy runs, mitmproxy's handler
replaces that one: it shuts the proxy down and the addon writes its report. Imports only the standard
library, mitmproxy and the proxy's own modules.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

__all__ = ["CLAIM_FILE", "main", "read_claim", "wait_for_claim"]

CLAIM_FILE = "claim.json"
_POLL = 0.01


def read_claim(path: Path) -> list[str]:
    """The mitmdump arguments of a claim file; ValueError when it is not `{"argv": [str, ...]}`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    argv = data.get("argv") if isinstance(data, dict) else None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f'{path}: expected {{"argv": [str, ...]}}')
    return argv


def wait_for_claim(folder: Path, idle: float, poll: float = _POLL) -> Path | None:
    """The claim file once it exists, or None after `idle` seconds."""
    claim = folder / CLAIM_FILE
    deadline = time.monotonic() + idle
    while not claim.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(poll)
    return claim


def _warm() -> None:
    """Import what mitmdump and the addon will need, so that the claimed start does not."""
    import proxy.main  # noqa: F401  (mitmproxy's master, its addons and the cassette addon)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(args: list[str]) -> int:
    if len(args) != 2:
        print("usage: python -m proxy.claim FOLDER IDLE_SECONDS", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_now)
    _warm()
    claim = wait_for_claim(Path(args[0]), float(args[1]))
    if claim is None:
        return 0
    try:
        argv = read_claim(claim)
    except (OSError, ValueError) as e:
        print(f"proxy claim: unreadable claim: {e}", file=sys.stderr)
        return 2
    from proxy.main import main as run_proxy

    sys.argv = ["proxy", *argv]
    run_proxy(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
