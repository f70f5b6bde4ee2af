"""The digester: member data hashed and written on a worker thread, the first failure in pack order kept."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from runner.pack.files import Digester
from runner.pack.manifest import MemberDigest


class _Full(io.BytesIO):
    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def _digest(data: bytes) -> MemberDigest:
    return MemberDigest(hashlib.sha256(data).hexdigest(), len(data))


def _feed(d: Digester, name: str, chunks: list[bytes], dst: io.BytesIO, expected: MemberDigest) -> None:
    sha = hashlib.sha256()
    for chunk in chunks:
        d.put(name, sha, lambda: dst, memoryview(chunk))
    d.end(name, sha, lambda: dst, expected)


def test_members_are_hashed_and_written_in_order(tmp_path: Path) -> None:
    d, outs = Digester(), [open(tmp_path / f"m{i}", "wb") for i in range(30)]  # noqa: SIM115
    for i, out in enumerate(outs):
        _feed(d, f"m{i}", [b"a" * i, b"b" * i], out, _digest(b"a" * i + b"b" * i))  # type: ignore[arg-type]
    assert d.close() is None and d.checked == 30
    assert all(out.closed for out in outs)
    assert (tmp_path / "m29").read_bytes() == b"a" * 29 + b"b" * 29


def test_the_first_failure_in_pack_order_is_the_one_kept() -> None:
    d = Digester()
    _feed(d, "ok", [b"x"], io.BytesIO(), _digest(b"x"))
    _feed(d, "altered", [b"y"], io.BytesIO(), _digest(b"z"))
    _feed(d, "unwritable", [b"w"], _Full(), _digest(b"w"))
    assert d.close() == ("altered", "sha256 does not match the manifest: the member was altered")
    assert d.checked == 1
    d = Digester()
    _feed(d, "unwritable", [b"w"], _Full(), _digest(b"w"))
    _feed(d, "altered", [b"y"], io.BytesIO(), _digest(b"z"))
    failure = d.close()
    assert failure is not None and failure[0] == "unwritable" and "No space left" in failure[1]


def test_files_are_created_on_the_writing_thread_once_per_member_even_when_empty(tmp_path: Path) -> None:
    d, created = Digester(), []

    def opener(name: str) -> Callable[[], IO[bytes]]:
        def create() -> IO[bytes]:
            created.append((name, threading.current_thread().name))
            return open(tmp_path / name, "wb")

        return create

    for name, chunks in (("a", [b"x", b"y"]), ("empty", []), ("b", [b"z"])):
        sha, dst = hashlib.sha256(), opener(name)
        for chunk in chunks:
            d.put(name, sha, dst, chunk)
        d.end(name, sha, dst, _digest(b"".join(chunks)))
    assert d.close() is None and d.checked == 3
    assert created == [("a", "pack-write"), ("empty", "pack-write"), ("b", "pack-write")]
    assert [(tmp_path / n).read_bytes() for n in ("a", "empty", "b")] == [b"xy", b"", b"z"]


def test_a_file_that_cannot_be_created_is_the_failure_named_and_one_cut_short_is_closed(
    tmp_path: Path,
) -> None:
    d = Digester()
    half = open(tmp_path / "half", "wb")  # noqa: SIM115
    sha = hashlib.sha256()
    d.put("half", sha, lambda: half, b"abc")  # its end never comes: the reader stopped on an error
    assert d.close() is None and d.checked == 0
    assert half.closed
    d = Digester()

    def refused() -> IO[bytes]:
        raise FileExistsError(17, "File exists")

    d.end("taken", hashlib.sha256(), refused, _digest(b""))
    failure = d.close()
    assert failure is not None and failure[0] == "taken" and "File exists" in failure[1]
