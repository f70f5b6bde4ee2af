"""The originals of the proxy's placeholders: a private side file the pack builder seals.

Input: every (kind, secret, placeholder) the recording proxy's redactor makes. Output: one JSON line per
new placeholder, `{"token", "kind", "value"}`, appended to a file the proxy alone can read (0600, opened
without following links), flushed and fsynced before the exchange that holds the placeholder is written;
`read_originals` gives them back to the pack builder, which seals them under the tenant key.
Rules: the file lives in the proxy's work folder, never next to or inside the cassette; values keep
undecodable bytes as surrogate escapes (`\\udcxx` in JSON), so a secret from a binary body round-trips.
Standard library only: this module runs inside the proxy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["Original", "OriginalsWriter", "read_originals"]

Original = tuple[str, str, str]  # (placeholder, kind, original value)


class OriginalsWriter:
    """Appends each placeholder's original once; `note` has the signature of the redactor's `found`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        os.fchmod(self._fd, 0o600)  # an older file of the same name may have been wider
        self._seen = {token for token, _, _ in read_originals(path)}

    def note(self, kind: str, value: str, token: str) -> None:
        if token in self._seen or self._fd < 0:
            return
        self._seen.add(token)
        line = json.dumps({"token": token, "kind": kind, "value": value}) + "\n"
        os.write(self._fd, line.encode("ascii"))
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_originals(path: Path) -> list[Original]:
    """Every recorded original, in order; a missing file holds none, a torn last line is skipped."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return []
    out: list[Original] = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
            out.append((str(item["token"]), str(item["kind"]), str(item["value"])))
        except (ValueError, KeyError, TypeError):
            continue  # the proxy was killed while writing this line: its exchange was never written
    return out
