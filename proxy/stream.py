"""Serves recorded streamed responses (SSE, chunked) as streams, from inside the proxy process.

mitmproxy sends a response set by an addon in one piece, so a recorded stream would reach the client
as one block. Instead, replay points the flow at this endpoint: a tiny HTTP/1.1 server on 127.0.0.1 in
the same process and event loop, which writes the recorded chunks one HTTP chunk each, optionally
paced by their recorded offsets. mitmproxy relays each chunk as it comes (`response.stream = True`),
over HTTP/1.1 or HTTP/2 to the client. Nothing leaves the process: the endpoint only answers tokens
the addon registered for the flow it is serving.

Recording redacts a stream as one text (`redact_stream`): a secret split across two chunks is found in
the joined stream, and the chunk boundaries are carried over to the redacted text, moved to the start of
a placeholder when they fell inside its secret, so no chunk holds a piece of a secret and the timing of
every other byte is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
from collections.abc import Callable, Sequence

from .cassette import RecordedResponse
from .redact import PLACEHOLDER_RE

__all__ = ["TOKEN_HEADER", "StreamEndpoint", "redact_stream"]

TOKEN_HEADER = "x-cassette-stream"
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_MAX_HEAD = 1024 * 1024
_PLACEHOLDER = re.compile(PLACEHOLDER_RE.pattern.encode("ascii"))


class StreamEndpoint:
    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.address: tuple[str, int] | None = None
        self._server: asyncio.base_events.Server | None = None
        self._pending: dict[str, RecordedResponse] = {}

    async def start(self) -> tuple[str, int]:
        if self.address is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            host, port = self._server.sockets[0].getsockname()[:2]
            self.address = (host, port)
        return self.address

    def register(self, response: RecordedResponse) -> str:
        token = secrets.token_hex(16)
        self._pending[token] = response
        return token

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: mitmproxy reuses the connection for the next stream
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if len(head) > _MAX_HEAD:
                    return
                fields = _parse_head(head)
                length = int(fields.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                response = self._pending.pop(fields.get(TOKEN_HEADER, ""), None)
                if response is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                await self._write(writer, response)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _write(self, writer: asyncio.StreamWriter, response: RecordedResponse) -> None:
        reason = response.reason.replace("\r", "").replace("\n", "") or "OK"
        head = [f"HTTP/1.1 {response.status} {reason}"]
        head += [f"{k}: {v}" for k, v in response.headers_to_serve(_HOP_BY_HOP)]
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape"))
        previous = 0.0
        for chunk in response.chunks or ():
            if self.pace > 0 and chunk.offset > previous:
                await asyncio.sleep((chunk.offset - previous) * self.pace)
            previous = max(previous, chunk.offset)
            if chunk.data:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk.data), chunk.data))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _parse_head(head: bytes) -> dict[str, str]:
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def redact_stream(
    pieces: Sequence[bytes], redact: Callable[[str], str], original: Callable[[str], str | None]
) -> list[bytes]:
    """`pieces` redacted as one joined text (undecodable bytes kept as surrogate escapes), cut again where
    they were cut. `original(placeholder)` is the secret a new placeholder stands for (the redactor's
    `found` notes): it places every cut exactly; without it, cuts between the first and the last change
    all move to the start of the changed part."""
    joined = b"".join(pieces)
    new = redact(joined.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    if new == joined:
        return list(pieces)
    cuts, at = [], 0
    for piece in pieces[:-1]:
        at += len(piece)
        cuts.append(at)
    spans = _replaced(joined, new, original)
    if spans is None:  # no exact alignment: keep the unchanged head and tail as they were cut
        head = len(_common_prefix(joined, new))
        tail = min(len(_common_prefix(joined[::-1], new[::-1])), len(joined) - head, len(new) - head)
        moved = [
            b if b <= head else b + len(new) - len(joined) if b >= len(joined) - tail else head for b in cuts
        ]
    else:
        moved = [_moved(b, spans) for b in cuts]
    edges = [0, *moved, len(new)]
    return [new[a:b] for a, b in itertools.pairwise(edges)]


def _replaced(
    old: bytes, new: bytes, original: Callable[[str], str | None]
) -> list[tuple[int, int, int, int]] | None:
    """The spans of `old` replaced by a placeholder in `new`, as (old start, old end, new start, new end),
    or None when `new` is not `old` with secrets replaced by the placeholders `original` knows."""
    spans, i, j = [], 0, 0
    for m in _PLACEHOLDER.finditer(new):
        if old[i : i + m.start() - j] != new[j : m.start()]:
            return None
        i += m.start() - j
        token = m.group(0)
        if not old.startswith(token, i):  # a placeholder made now, not one the stream already held
            value = original(token.decode("ascii"))
            secret = value.encode("utf-8", "surrogateescape") if value is not None else b""
            if not secret or not old.startswith(secret, i):
                return None
            spans.append((i, i + len(secret), m.start(), m.end()))
            token = secret
        i, j = i + len(token), m.end()
    return spans if old[i:] == new[j:] else None


def _moved(cut: int, spans: list[tuple[int, int, int, int]]) -> int:
    shift = 0
    for old_start, old_end, new_start, new_end in spans:
        if cut <= old_start:
            break
        if cut < old_end:
            return new_start  # inside a secret: its placeholder goes wholly to the later chunk
        shift = new_end - old_end
    return cut + shift


def _common_prefix(a: bytes, b: bytes) -> bytes:
    n = 0
    limit = min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return a[:n]
