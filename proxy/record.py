"""Record mode: every exchange crossing the proxy is written to the cassette once, as soon as it is complete.

Input: mitmproxy flows at the addon's hooks (`responseheaders`, `response`, `error`) and the proxy's stop
(`close`). Output: one redacted cassette line per exchange (proxy.cassette), in the format of
docs/cassette-format.md.

Rules:
- a plain response is written by the `response` hook, once its whole body has arrived;
- a streamed response (SSE, chunked, length-less HTTP/2) is passed through chunk by chunk while its chunks
  and offsets are kept, and is written the moment its upstream body ends: mitmproxy's last call of the
  stream function (empty data after the last chunk). Not only at the `response` hook: mitmproxy runs that
  after the client has every byte, and a client that stops reading at `data: [DONE]` may close (or exit)
  first. An HTTP/2 upstream also passes empty DATA frames as empty data, so there the `response` hook,
  which follows at once, writes it;
- a stream whose client goes first (it closed or reset the stream, or the proxy stops with the stream in
  flight) is written as what crossed to the client: its chunks so far, with a warning. That client read
  no further; replay serves it those bytes and ends the stream;
- a stream the upstream breaks off (server closed, protocol error) is not written, nor a plain response
  that never arrived: the client saw an error a cassette cannot hold, and replay answers with a miss;
- whichever of these comes first writes the exchange; later ones find it written. Protocol upgrades
  (101) are not written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import cast

from mitmproxy import http
from mitmproxy.connection import ConnectionState
from mitmproxy.coretypes.multidict import MultiDictView

from .cassette import CassetteError, CassetteWriter, Chunk, Exchange, RecordedRequest, RecordedResponse
from .redact import Redactor
from .stream import redact_stream

__all__ = ["Recorder", "exchange_from_flow", "request_from_flow"]

logger = logging.getLogger(__name__)
_SETTLED = "cassette_recorded"  # flow metadata: written, or given up on


class _Capture:
    """One streamed response in flight: the chunks that crossed, and whether it is settled (written or
    given up). Called by mitmproxy with each chunk, and with empty data when the upstream body ends."""

    def __init__(self, flow: http.HTTPFlow, ended: Callable[[_Capture], None]) -> None:
        self.flow = flow
        self.chunks: list[Chunk] = []
        self.settled = False
        self._start = time.monotonic()
        self._ended = ended

    def __call__(self, data: bytes) -> bytes:
        if data:
            self.chunks.append(Chunk(time.monotonic() - self._start, data))
        elif self.flow.response is not None and not self.flow.response.is_http2:
            self._ended(self)  # HTTP/1: mitmproxy passes empty data only at the end of the body
        return data

    def complete(self) -> bool:
        """The upstream body ended (mitmproxy stamps the response's end once it has)."""
        return self.flow.response is not None and self.flow.response.timestamp_end is not None


class Recorder:
    def __init__(
        self, writer: CassetteWriter, redactor: Redactor, original: Callable[[str], str | None]
    ) -> None:
        self.writer = writer
        self.redactor = redactor
        self.original = original  # placeholder -> the secret it replaced (redact_stream places cuts with it)
        self.recorded = 0
        self.closed = False
        self._streams: dict[str, _Capture] = {}  # flow id -> stream in flight

    def headers(self, flow: http.HTTPFlow) -> None:
        if self.closed or flow.response is None or not _is_stream(flow.response):
            return
        capture = _Capture(flow, self._upstream_ended)
        self._streams[flow.id] = capture
        flow.response.stream = capture

    def response(self, flow: http.HTTPFlow) -> None:
        if self.closed or flow.response is None or flow.metadata.get(_SETTLED):
            return
        capture = self._streams.get(flow.id)
        if flow.response.status_code == 101:
            # A protocol switch (WebSocket) cannot be replayed from a cassette: leave it out, so replay
            # answers it with a clear miss instead of an upgrade that never speaks.
            logger.warning(f"cassette record: not recording the protocol upgrade of {self._url(flow)}")
            self._settle(flow)
            return
        if capture is None:
            self._write(flow, None)
        else:
            self._finish(capture)

    def error(self, flow: http.HTTPFlow) -> None:
        if self.closed or flow.metadata.get(_SETTLED):
            return
        capture = self._streams.get(flow.id)
        failed = f"{flow.request.method} {self._url(flow)} failed ({flow.error.msg if flow.error else '?'})"
        if capture is None:
            logger.warning(f"cassette record: {failed}")
        elif capture.complete():
            self._finish(capture)
        elif _client_left(flow):
            logger.warning(f"cassette record: {failed}; recording the {len(capture.chunks)} chunks it got")
            self._finish(capture)
        else:
            logger.warning(f"cassette record: {failed}; the upstream broke off the stream, not recording it")
            self._settle(flow)

    def close(self) -> None:
        """Write every stream still in flight (see the module's rules), then close the cassette."""
        if self.closed:
            return
        for capture in list(self._streams.values()):
            if not capture.settled and not capture.complete():
                logger.warning(
                    f"cassette record: the proxy stops during {capture.flow.request.method} "
                    f"{self._url(capture.flow)}; recording the {len(capture.chunks)} chunks that crossed"
                )
            self._finish(capture)
        self.closed = True
        self.writer.close()

    def _upstream_ended(self, capture: _Capture) -> None:
        try:
            self._finish(capture)
        except Exception:  # inside mitmproxy's stream: the response must still reach the client
            logger.exception(f"cassette record: could not record {self._url(capture.flow)}")

    def _finish(self, capture: _Capture) -> None:
        if capture.settled or self.closed:
            return
        self._settle(capture.flow)
        chunks = capture.chunks
        if chunks:  # one secret may be split across chunks: redact the stream as one text
            datas = redact_stream([c.data for c in chunks], self.redactor.text, self.original)
            chunks = [Chunk(c.offset, data) for c, data in zip(chunks, datas, strict=True)]
        self._write(capture.flow, chunks)

    def _settle(self, flow: http.HTTPFlow) -> None:
        flow.metadata[_SETTLED] = True
        capture = self._streams.pop(flow.id, None)
        if capture is not None:
            capture.settled = True

    def _write(self, flow: http.HTTPFlow, chunks: list[Chunk] | None) -> None:
        try:
            self.writer.write(exchange_from_flow(flow, chunks).redacted(self.redactor))
            self.recorded += 1
        except CassetteError as e:
            logger.error(f"cassette record: {e}")

    def _url(self, flow: http.HTTPFlow) -> str:
        return self.redactor.text(flow.request.pretty_url)


def request_from_flow(flow: http.HTTPFlow, headers: bool = True) -> RecordedRequest:
    req = flow.request
    path, has_query, _ = req.path.partition("?")
    return RecordedRequest(
        method=req.method,
        scheme=req.scheme,
        host=req.pretty_host,
        port=req.port,
        path=path,
        query=_pairs(req.query) if has_query else (),
        headers=_pairs(req.headers) if headers else (),
        body=req.get_content(strict=False) or b"",
        http_version=req.http_version,
    )


def exchange_from_flow(flow: http.HTTPFlow, chunks: list[Chunk] | None) -> Exchange:
    resp = flow.response
    assert resp is not None
    started = flow.request.timestamp_start
    ended = resp.timestamp_end or time.time()
    return Exchange(
        request=request_from_flow(flow),
        response=RecordedResponse(
            status=resp.status_code,
            reason=resp.reason,
            headers=_pairs(resp.headers),
            body=b"".join(c.data for c in chunks)
            if chunks is not None
            else resp.get_content(strict=False) or b"",
            chunks=tuple(chunks) if chunks is not None else None,
            http_version=resp.http_version,
        ),
        started=started,
        duration=max(0.0, ended - started),
    )


def _is_stream(response: http.Response) -> bool:
    if "text/event-stream" in response.headers.get("content-type", ""):
        return True
    if "content-length" in response.headers:
        return False
    return "chunked" in response.headers.get("transfer-encoding", "").lower() or response.is_http2


def _client_left(flow: http.HTTPFlow) -> bool:
    """The client closed its side of the connection, or reset this HTTP/2 stream."""
    closed = not flow.client_conn.state & ConnectionState.CAN_READ
    return closed or (flow.error is not None and flow.error.msg.startswith("stream reset by client"))


def _pairs(fields: http.Headers | MultiDictView[str, str]) -> tuple[tuple[str, str], ...]:
    """Every (name, value) pair in order, repeated names kept."""
    # _MultiDict.items(self, multi=False); with multi=True both give str pairs (Headers decodes its bytes).
    items = cast("Callable[..., Iterable[tuple[str, str]]]", fields.items)
    return tuple(items(multi=True))
