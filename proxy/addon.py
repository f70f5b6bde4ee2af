"""The cassette proxy addon: record every exchange to a cassette, or answer every request from it.

Load it with `mitmdump -s /path/to/proxy/addon.py --set cassette_mode=replay --set cassette_path=...`;
it works from a plain directory (its siblings are imported as the package `proxy`).

Options (read once in `configure`):
  cassette_mode           record | replay (default replay: nothing ever goes upstream)
  cassette_path           the JSONL cassette (appended to in record mode, read in replay mode)
  cassette_report         where to write the JSON report when the proxy stops (see proxy.report)
  cassette_ignore_fields  JSON body fields and query parameters ignored when matching
  cassette_pace           replay streams with recorded timing times this factor (0: no waiting)
  cassette_redact_key     the per-pack key of the secret placeholders (hex, or any text)
  cassette_redact_key_file  a file holding that key (preferred: a key on the command line shows in `ps`)
  cassette_secrets        record: append the original of every placeholder here (0600, see proxy.originals)
  cassette_listen_fd      also accept on this inherited listening socket, reported first (see proxy.listen)

Record (proxy.record): requests go upstream untouched; each exchange is redacted and appended as one
line once complete, a streamed one as soon as its upstream body ends, or as what reached the client when
the client goes first; streams still in flight when the proxy stops are written before the report.
Streams are redacted as one joined text (proxy.stream.redact_stream); non-UTF-8 bodies are scanned too.
Replay: `connection_strategy=lazy` and `upstream_cert=false` are forced, each request is answered in the
`request` hook from the cassette, streamed recordings are replayed chunk by chunk with their recorded
pauses when `cassette_pace` is above 0 (see proxy.stream), else their bytes go out at once, a
request with no match gets a local 502 with `X-Cassette-Miss`, and any upstream connection is refused.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast


def _register_package() -> None:
    """Make this file's directory importable as the package `proxy` when mitmdump loads us by path."""
    here = os.path.dirname(os.path.abspath(__file__))
    loaded = sys.modules.get("proxy")
    if loaded is not None and os.path.dirname(os.path.abspath(getattr(loaded, "__file__", "") or "")) == here:
        return
    spec = importlib.util.spec_from_file_location(
        "proxy", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    assert spec is not None and spec.loader is not None
    for name in [n for n in sys.modules if n == "proxy" or n.startswith("proxy.")]:
        del sys.modules[name]
    module = importlib.util.module_from_spec(spec)
    sys.modules["proxy"] = module
    spec.loader.exec_module(module)


if __package__ != "proxy":
    _register_package()

from mitmproxy import ctx, exceptions, http  # noqa: E402
from mitmproxy.addons.proxyserver import Proxyserver  # noqa: E402
from mitmproxy.connection import Address  # noqa: E402
from mitmproxy.proxy import server_hooks  # noqa: E402

from proxy.cassette import CassetteError, CassetteWriter, Exchange, RecordedResponse, read_exchanges  # noqa: E402
from proxy.listen import serve  # noqa: E402
from proxy.match import DEFAULT_IGNORE_FIELDS, CassetteIndex, Normalised, Normaliser  # noqa: E402
from proxy.originals import OriginalsWriter  # noqa: E402
from proxy.ready import MODES, Mode, ready_line  # noqa: E402
from proxy.record import Recorder, request_from_flow  # noqa: E402
from proxy.redact import Redactor, key_from_text  # noqa: E402
from proxy.report import Miss, Report, Unused  # noqa: E402
from proxy.stream import TOKEN_HEADER, StreamEndpoint  # noqa: E402

__all__ = ["CassetteProxy"]

logger = logging.getLogger(__name__)

MISS_STATUS = 502
MISS_HEADER = "X-Cassette-Miss"
_STREAM_MARK = "cassette_stream"
_DROP_ON_SERVE = frozenset({"transfer-encoding", "connection", "keep-alive", "proxy-connection", "upgrade"})


class CassetteProxy:
    def __init__(self) -> None:
        self.mode: Mode = "replay"
        self.cassette: Path | None = None
        self.report_path: Path | None = None
        self.redactor = Redactor(secrets.token_bytes(32))
        self.normaliser = Normaliser()
        self.index: CassetteIndex | None = None
        self.recorder: Recorder | None = None
        self.originals: OriginalsWriter | None = None
        self._made: dict[str, str] = {}  # placeholder -> the secret it replaced, this run
        self.stream: StreamEndpoint | None = None
        self.served = 0
        self.misses: list[Miss] = []
        self.refused: list[str] = []

    def load(self, loader: Any) -> None:
        loader.add_option("cassette_mode", str, "replay", "record or replay.", choices=list(MODES))
        loader.add_option("cassette_path", str, "", "The JSONL cassette to record to or replay from.")
        loader.add_option("cassette_report", str, "", "Write a JSON report here when the proxy stops.")
        loader.add_option(
            "cassette_ignore_fields",
            Sequence[str],
            list(DEFAULT_IGNORE_FIELDS),
            "JSON body fields (name anywhere, or dotted.path from the root) and query parameters "
            "ignored when matching.",
        )
        loader.add_option(
            "cassette_pace",
            str,
            "0",
            "Replay streamed chunks with recorded timing times this (0: no waiting).",
        )
        loader.add_option(
            "cassette_redact_key", str, "", "Key of the secret placeholders (hex or text); random when empty."
        )
        loader.add_option("cassette_redact_key_file", str, "", "A file holding cassette_redact_key.")
        loader.add_option("cassette_secrets", str, "", "Record: append every placeholder's original here.")
        loader.add_option("cassette_listen_fd", int, -1, "Also accept on this inherited listening socket.")

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("cassette_") for name in updated):
            return
        opts = ctx.options
        if opts.cassette_mode not in MODES:  # mitmproxy does not hold `--set` values to the choices
            raise _options_error(f"cassette_mode must be record or replay, not {opts.cassette_mode!r}")
        self.mode = opts.cassette_mode
        self.cassette = Path(opts.cassette_path) if opts.cassette_path else None
        self.report_path = Path(opts.cassette_report) if opts.cassette_report else None
        key = opts.cassette_redact_key
        if opts.cassette_redact_key_file:
            try:
                key = Path(opts.cassette_redact_key_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise _options_error(f"cannot read cassette_redact_key_file: {e}") from e
        if not key:
            logger.warning("cassette_redact_key is empty: secret placeholders are stable for this run only")
        self._made = {}
        self.redactor = Redactor(key_from_text(key), found=self._found)
        self.normaliser = Normaliser(opts.cassette_ignore_fields)
        try:
            pace = float(opts.cassette_pace)
        except ValueError:
            pace = -1.0
        if not pace >= 0:
            raise _options_error(f"cassette_pace must be a number, 0 or more, not {opts.cassette_pace!r}")
        self._close_writer()
        self.index = None
        if self.mode == "record":
            if self.cassette is None:
                logger.warning("cassette record: cassette_path is not set, nothing will be recorded")
                return
            try:
                if opts.cassette_secrets:
                    self.originals = OriginalsWriter(Path(opts.cassette_secrets))
                self.recorder = Recorder(CassetteWriter(self.cassette), self.redactor, self._made.get)
            except OSError as e:
                raise _options_error(f"cannot open {opts.cassette_secrets}: {e.strerror}") from e
            except CassetteError as e:
                raise _options_error(str(e)) from e
            return
        exchanges: list[Exchange] = []
        if self.cassette is None:
            # Still replay: with nothing to serve every request gets a local miss, and none goes out.
            logger.warning("cassette replay: cassette_path is not set, every request will miss")
        elif not self.cassette.is_file():
            raise _options_error(f"cassette {self.cassette} does not exist; record one first")
        else:
            try:
                exchanges = read_exchanges(self.cassette)
            except CassetteError as e:
                raise _options_error(str(e)) from e
        self.index = CassetteIndex(exchanges, self.normaliser)
        if self.stream is None:
            self.stream = StreamEndpoint(pace)  # started by `running`, in mitmproxy's event loop
        self.stream.pace = pace
        # The promise of replay: no connection is ever opened on the client's behalf.
        if opts.connection_strategy != "lazy" or opts.upstream_cert:
            _update_options(connection_strategy="lazy", upstream_cert=False)
        logger.info(f"cassette replay: {len(exchanges)} exchanges from {self.cassette}")

    # --- hooks ---------------------------------------------------------------------------------------

    async def running(self) -> None:
        if self.mode == "replay" and self.stream is not None:
            await self.stream.start()
        addresses = _listen_addrs()
        served = await serve(ctx.options.cassette_listen_fd)
        if served is not None:
            addresses = [served[1], *addresses]
        # Launchers wait for this line: it comes only once the addon loaded and the proxy listens.
        logger.info(ready_line(self.mode, addresses))

    def request(self, flow: http.HTTPFlow) -> None:
        if self.mode != "replay" or self.index is None or flow.response is not None:
            return
        try:
            self._replay(flow)
        except Exception as e:  # an answer must come from here, or the request would look for a server
            url = self.redactor.text(flow.request.pretty_url)
            logger.exception(f"cassette replay failed for {flow.request.method} {url}")
            reason = f"cassette replay failed: {type(e).__name__}: {e}"
            self.misses.append(Miss(flow.request.method, url, reason, ()))
            flow.response = _local_error(reason, {"message": reason})

    def _replay(self, flow: http.HTTPFlow) -> None:
        assert self.index is not None
        # Headers are not matched: leave them out.
        request = request_from_flow(flow, headers=False)
        found, live = self.index.match(request, lambda r: r.redacted(self.redactor))
        if found is None:
            assert live is not None  # a miss comes back normalised, after redaction
            self._miss(flow, live)
            return
        self.served += 1
        recorded = self.index.exchanges[found].response
        stream = self.stream if recorded.chunks is not None and flow.request.method != "HEAD" else None
        if stream is None or stream.pace <= 0 or stream.address is None:  # unpaced: the bytes at once
            flow.response = response_from_recording(recorded, head=flow.request.method == "HEAD")
            flow.is_replay = "response"
            return
        req = flow.request
        flow.metadata[_STREAM_MARK] = (req.scheme, req.host, req.port)
        req.scheme, (req.host, req.port) = "http", stream.address
        # The endpoint needs only the token: a body (maybe chunked) would just have to be skipped there.
        flow.request.headers.pop("transfer-encoding", None)
        flow.request.content = b""
        flow.request.headers[TOKEN_HEADER] = stream.register(recorded)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if self.mode == "replay":
            if _STREAM_MARK in flow.metadata:
                flow.response.stream = True
                # The request went to the stream endpoint; show it as the client sent it.
                req = flow.request
                req.scheme, req.host, req.port = flow.metadata.pop(_STREAM_MARK)
                req.headers.pop(TOKEN_HEADER, None)
            return
        if self.recorder is not None:
            self.recorder.headers(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        if self.mode == "record" and self.recorder is not None:
            self.recorder.response(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if self.mode == "record" and self.recorder is not None:
            self.recorder.error(flow)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if self.mode != "replay" or data.server.address is None:
            return
        if self.stream is not None and tuple(data.server.address[:2]) == self.stream.address:
            return
        target = f"{data.server.address[0]}:{data.server.address[1]}"
        self.refused.append(target)
        data.server.error = f"cassette replay makes no upstream connections (refused {target})"
        logger.warning(f"cassette replay: refused an upstream connection to {target}")

    def done(self) -> None:
        self._close_writer()  # streams in flight are written first: the report counts them
        if self.stream is not None:
            self.stream.close()
        if self.report_path is not None:
            self.build_report().write(self.report_path)

    # --- helpers -------------------------------------------------------------------------------------

    def build_report(self) -> Report:
        if self.index is None:
            recorded = self.recorder.recorded if self.recorder is not None else 0
            return Report(self.mode, str(self.cassette), recorded, 0, refused_upstream=tuple(self.refused))
        return Report(
            mode=self.mode,
            cassette=str(self.cassette),
            exchanges=len(self.index.exchanges),
            served=self.served,
            misses=tuple(self.misses),
            unused=tuple(
                Unused(i, self.index.exchanges[i].request.method, self.index.normalised[i].url)
                for i in self.index.unused()
            ),
            refused_upstream=tuple(self.refused),
        )

    def _found(self, kind: str, secret: str, token: str) -> None:
        """Every placeholder made: its original goes to the side file before its exchange is written."""
        self._made[token] = secret
        if self.originals is not None:
            self.originals.note(kind, secret, token)

    def _close_writer(self) -> None:
        if self.recorder is not None:
            self.recorder.close()  # before the originals: a stream written now may make placeholders
        if self.originals is not None:
            self.originals.close()
            self.originals = None

    def _miss(self, flow: http.HTTPFlow, live: Normalised) -> None:
        assert self.index is not None
        candidates = tuple(self.index.nearest(live))
        exhausted = any(not c.failed for c in candidates)
        reason = (
            "every recorded response for this request was already served"
            if exhausted
            else "no recorded request matches"
        )
        miss = Miss(live.method, live.url, reason, candidates)
        self.misses.append(miss)
        lines = [f"cassette miss: {live.method} {live.url}: {reason}"]
        for c in candidates:
            why = "; ".join(
                f"{f.matcher}: {f.difference.splitlines()[0] if f.difference else ''}" for f in c.failed
            )
            lines.append(f"  nearest #{c.index} {c.method} {c.url} -> {why or 'already served'}")
        logger.warning("\n".join(lines))
        flow.response = _local_error(
            reason,
            {
                "message": f"no recorded response for {live.method} {live.url}: {reason}",
                "nearest": [
                    {"index": c.index, "url": c.url, "failed": [f.matcher for f in c.failed]}
                    for c in candidates
                ],
            },
        )


def _local_error(reason: str, detail: dict[str, Any]) -> http.Response:
    """The proxy's own answer when the cassette has none; `x-should-retry: false` stops SDK retries."""
    body = {"error": {"type": "cassette_miss", **detail}}
    return http.Response.make(
        MISS_STATUS,
        json.dumps(body, indent=2, ensure_ascii=False).encode(),
        {
            "content-type": "application/json",
            MISS_HEADER: reason.replace("\r", " ").replace("\n", " ")[:200],
            "x-should-retry": "false",
        },
    )


def response_from_recording(recorded: RecordedResponse, head: bool = False) -> http.Response:
    """A plain HTTP/1.1 response (mitmproxy translates it for HTTP/2 clients) with the recorded body."""
    now = time.time()
    fields = [
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in recorded.headers_to_serve(_DROP_ON_SERVE)
    ]
    encoded = any(k.lower() == b"content-encoding" for k, _ in fields)
    had_length = any(k.lower() == b"content-length" for k, _ in fields)
    # The common case: the body goes out as stored, only its length is set here. A HEAD answer keeps
    # the recorded length of the body it does not carry; an empty 204/304 gets no length it never had.
    if not encoded and not head and (recorded.body or had_length):
        fields = [f for f in fields if f[0].lower() != b"content-length"]
        fields.append((b"content-length", str(len(recorded.body)).encode()))
    response = http.Response(
        http_version=b"HTTP/1.1",
        status_code=recorded.status,
        reason=recorded.reason.replace("\r", "").replace("\n", "").encode("utf-8", "surrogateescape"),
        headers=http.Headers(fields),
        content=b"" if encoded or head else recorded.body,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )
    if encoded and recorded.body and not head:
        try:
            response.content = recorded.body  # applies the recorded content-encoding again
        except ValueError:
            response.headers.pop("content-encoding", None)
            response.content = recorded.body
    return response


# --- typed doors: mitmproxy ships py.typed but leaves these few callables unannotated -----------------

# MitmproxyException.__init__(self, message=None): mitmproxy shows the message and rejects the options.
_options_error = cast("Callable[[str], exceptions.OptionsError]", exceptions.OptionsError)


def _update_options(**values: object) -> None:
    """`ctx.options.update(**values)`, one update (and one `configure` round) for all of them."""
    update = cast("Callable[..., None]", ctx.options.update)  # OptManager.update(self, **kwargs)
    update(**values)


def _listen_addrs() -> list[Address]:
    """Where the proxy listens; empty without a proxyserver addon (mitmproxy's test harness)."""
    # AddonManager.get(self, name) returns the addon of that name, or None.
    get = cast("Callable[[str], Proxyserver | None]", ctx.master.addons.get)
    server = get("proxyserver")
    return server.listen_addrs() if server is not None else []


addons = [CassetteProxy()]
