"""Files written from a pack: created under a folder this process made, never through a link.

Inputs: a root folder and member names already checked by `layout.layout_problem`. Outputs: new files
opened for writing. Rules: every folder is opened with O_NOFOLLOW|O_DIRECTORY from the root down and every
file with O_CREAT|O_EXCL|O_NOFOLLOW, so a link planted in the tree is never followed and nothing is
overwritten; with `only`, members outside it are not written (the reader still checks them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from runner.pack.layout import MANIFEST

__all__ = ["DirWriter"]


class DirWriter:
    """Creates files under a folder it owns, never following a link; with `only`, just those members."""

    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, root: Path, only: frozenset[str] | None = None) -> None:
        self.root = root
        self.only = only

    def wants(self, name: str) -> bool:
        """Whether `name` is written (a member left out is still read and checked, then dropped)."""
        return self.only is None or name in self.only or name == MANIFEST

    @contextlib.contextmanager
    def _dir(self, parts: list[str]) -> Iterator[int]:
        fd = os.open(self.root, self._DIR_FLAGS)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, self._DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    def mkdir(self, name: str) -> None:
        with self._dir(name.split("/")):
            pass

    def create(self, name: str) -> IO[bytes]:
        *parents, base = name.split("/")
        with self._dir(parents) as parent:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(base, flags, 0o644, dir_fd=parent)
        return os.fdopen(fd, "wb")
