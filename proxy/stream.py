"""Serves recorded streamed responses (SSE, chunked) as streams, from inside the proxy process.

mitmproxy sends a response set by an addon in one piece, so a recorded stream would reach the client
as one block. Instead, replay points the flow at this endpoint: a tiny HTTP/1.1 server on 127.0.0.1 in
the same process and event loop, which writes the recorded chunks one HTTP chunk each, optionally
paced by their recorded offsets. mitmproxy relays each chunk as it comes (`response.stream = True`),
over HTTP/1.1 or HTTP/2 to the client. Nothing leaves the process: the endpoint only answers tokens
the addon registered for the flow it is serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from .cassette import RecordedResponse

__all__ = ["TOKEN_HEADER", "StreamEndpoint"]

TOKEN_HEADER = "x-cassette-stream"
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_MAX_HEAD = 1024 * 1024


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
