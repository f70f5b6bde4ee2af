"""Members compressed ahead of the build, in the order they came, into one zstd frame in a temp file.

Input: members as the redaction pass finishes them (name as it will be written, content, sha256), in a
deterministic order, from one thread. Output: a zstd frame of their tar entries that `build` copies into
the pack after the manifest, so a member is read, redacted, hashed and compressed while it is in memory
once, and zstd's threads compress while the pass scans the next members.
Rules:
- The frame holds exactly the tar entries `build` would write (header, content, padding), compressed at
  the pack's level with the content checksum on; a name already spooled is not spooled again (two
  artifacts redacted to the same content are one blob).
- `build` uses the frame only when every entry still has its name, size and sha256 in the final member
  list (a member sealed after redaction was rewritten: then every member is compressed at write time).
- The temp file lives in the builder's staging folder and goes with it (or on `close`).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, cast

import zstandard

from runner.errors import PackError
from runner.pack.layout import chunks, padding, tar_header
from runner.pack.manifest import MemberDigest

__all__ = ["Spool"]


class Spool:
    """Tar entries compressed ahead of the build; `entries` maps each name to its digest, in order."""

    def __init__(self, folder: Path, level: int) -> None:
        self._folder = folder
        self._level = level
        self._file: io.BufferedRandom | None = None
        self._writer: zstandard.ZstdCompressionWriter | None = None
        self.entries: dict[str, MemberDigest] = {}

    def add(self, name: str, data: bytes, sha256: str) -> None:
        """Append the tar entry of member `name` holding `data` (which hashes to `sha256`)."""
        if name in self.entries:
            return
        try:
            if self._writer is None:
                if self._file is not None:
                    raise RuntimeError("the spool was finished; no member can be added to it")
                self._folder.mkdir(parents=True, exist_ok=True)  # a builder's staging folder is made lazily
                fd, path = tempfile.mkstemp(dir=self._folder, prefix=".spool-")
                os.unlink(path)  # nothing to clean up whatever happens: the file goes with its descriptor
                self._file = os.fdopen(fd, "w+b")
                cctx = zstandard.ZstdCompressor(level=self._level, threads=-1, write_checksum=True)
                self._writer = cctx.stream_writer(cast(IO[bytes], self._file), closefd=False)
            self._writer.write(tar_header(name, len(data)))
            self._writer.write(data)
            self._writer.write(padding(len(data)))
        except OSError as e:
            raise PackError(
                f"cannot write the pack's members to a temp file in {self._folder}: {e.strerror or e}; "
                "check that folder has space (set TMPDIR to another)"
            ) from e
        self.entries[name] = MemberDigest(sha256=sha256, size=len(data))

    def usable(self, members: Mapping[str, MemberDigest]) -> bool:
        """Whether every entry is still the member of that name in `members`."""
        return bool(self.entries) and all(members.get(n) == d for n, d in self.entries.items())

    def copy(self, write: Callable[[memoryview], object]) -> None:
        """Pass the whole frame to `write` in chunks."""
        if self._writer is not None:
            self._writer.flush(zstandard.FLUSH_FRAME)
            self._writer = None
        assert self._file is not None  # usable() holds: there are entries
        self._file.seek(0)
        for chunk in chunks(self._file):
            write(chunk)

    def close(self) -> None:
        self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self.entries.clear()
