"""The proxy's ready line: written once the addon is loaded and the proxy listens; launchers wait for it.

Input: the proxy's mode and listen addresses (`ready_line`), or any text of the proxy's log (`find_ready`).
Output: the line, or the first ready line found in the text as a `Ready` (mode, host, port).
Rules: this module is the only place that knows the line's wording; the addon writes it, the local
process and the sidecar container parse it. The first address is the one reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["MODES", "READY_PATTERN", "Mode", "Ready", "find_ready", "ready_line"]

Mode = Literal["record", "replay"]
MODES: tuple[Mode, ...] = get_args(Mode)
# The first HOST:PORT; the port must end there, so an IPv6 host (::1:8080) keeps its colons.
READY_PATTERN = re.compile(r"cassette proxy ready \((record|replay)\) at ([^ ,]*?):(\d+)(?=[,\s]|$)")


@dataclass(frozen=True)
class Ready:
    mode: Mode
    host: str
    port: int


def ready_line(mode: Mode, addresses: Sequence[tuple[str, int]]) -> str:
    # An IPv6 listener's address is (host, port, flowinfo, scope id): the first two are shown.
    where = ", ".join(f"{a[0]}:{a[1]}" for a in addresses) or "(no listener)"
    return f"cassette proxy ready ({mode}) at {where}"


def find_ready(text: str) -> Ready | None:
    """The first ready line in `text` that names a listener; None when there is none (yet)."""
    found = READY_PATTERN.search(text)
    if found is None:
        return None
    mode: Mode = "record" if found.group(1) == "record" else "replay"
    return Ready(mode, found.group(2), int(found.group(3)))
