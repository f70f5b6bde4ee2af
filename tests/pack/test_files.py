"""The digester: member data hashed and written on two threads, the first failure in pack order kept."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

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
        d.put(name, sha, dst, memoryview(chunk))
    d.end(name, sha, dst, expected)


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
