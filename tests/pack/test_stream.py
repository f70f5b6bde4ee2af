"""The stream layers under the pack reader: decompressing ahead on a thread, bounded, errors where read."""

from __future__ import annotations

import io
import threading

import pytest

from runner.pack.layout import CHUNK
from runner.pack.stream import Ahead, CappedReader, Refused


class _Slow(io.BytesIO):
    """A reader that counts its reads and can fail after some."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.reads = 0
        self.fail_after = fail_after

    def read(self, n: int | None = -1) -> bytes:
        if self.fail_after is not None and self.reads >= self.fail_after:
            raise OSError(5, "Input/output error")
        self.reads += 1
        return super().read(n)


def _drain(ahead: Ahead, n: int) -> bytes:
    out = []
    while part := ahead.read(n):
        assert len(part) <= n
        out.append(bytes(part))
    return b"".join(out)


@pytest.mark.parametrize("n", [1000, CHUNK, 3 * CHUNK])
def test_ahead_hands_out_every_byte_in_order(n: int) -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256 + 7)
    with Ahead(_Slow(data)) as ahead:
        assert _drain(ahead, n) == data
        assert ahead.read(10) == b""  # the end stays the end


def test_ahead_reads_at_most_depth_chunks_before_they_are_asked_for() -> None:
    source = _Slow(b"x" * (20 * CHUNK))
    ahead = Ahead(source, depth=2)
    try:
        assert ahead.read(1) == b"x"
        for _ in range(50):  # give the thread time to run ahead as far as it may
            threading.Event().wait(0.01)
        assert source.reads <= 1 + 2 + 1  # the chunk handed out, the queue, the one waiting to go in
    finally:
        ahead.close()
    assert not ahead._thread.is_alive()


def test_an_error_on_the_decompressing_thread_is_raised_by_the_read_that_meets_it() -> None:
    with Ahead(_Slow(b"y" * (3 * CHUNK), fail_after=2)) as ahead:
        assert bytes(ahead.read(CHUNK)) == b"y" * CHUNK
        assert bytes(ahead.read(CHUNK)) == b"y" * CHUNK
        with pytest.raises(OSError, match="Input/output error"):
            ahead.read(CHUNK)


def test_closing_stops_a_thread_that_waits_for_room() -> None:
    ahead = Ahead(_Slow(b"z" * (50 * CHUNK)), depth=1)
    ahead.close()  # nothing was read: the thread is waiting to hand over its second chunk
    assert not ahead._thread.is_alive()


def test_the_cap_counts_what_ahead_hands_out() -> None:
    with Ahead(_Slow(b"b" * (2 * CHUNK))) as ahead:
        capped = CappedReader(ahead, CHUNK + 10)
        assert len(capped.read(CHUNK)) == CHUNK
        with pytest.raises(Refused, match="goes past"):
            while capped.read(CHUNK):
                pass
