"""The cassette: recorded HTTP exchanges, one JSON object per line (`cassettes/http.jsonl`).

Input: exchanges built by the addon or an importer. Output: lines written durably (flushed and fsynced
one by one, so a crash loses at most the exchange in flight); reading returns frozen Exchanges and
refuses lines it does not understand. docs/cassette-format.md documents every field.

Rules:
- every line carries `"v": FORMAT_VERSION`; an unknown version is refused, never guessed;
- bodies that are valid UTF-8 are stored as text, anything else as base64;
- a plain response stores its decoded body (its content-encoding is applied again when served);
  a streamed response stores its chunks as they crossed the proxy, with their offsets in seconds;
- a cassette comes from someone else: every field is type-checked on read, ports, status codes and
  times range-checked (no NaN, nothing negative), lines capped in size; whatever is wrong with it, even
  nesting too deep for the JSON parser, is one CassetteError naming the file and line.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlencode

from .redact import Redactor

__all__ = [
    "FORMAT_VERSION",
    "CassetteError",
    "CassetteWriter",
    "Chunk",
    "Exchange",
    "RecordedRequest",
    "RecordedResponse",
    "read_exchanges",
]

FORMAT_VERSION = 1
# A cassette line larger than this is refused: it protects replay against hostile files.
MAX_LINE_BYTES = 256 * 1024 * 1024

Headers = tuple[tuple[str, str], ...]


class CassetteError(ValueError):
    """A cassette line is malformed, of an unknown version, or cannot be written."""


@dataclass(frozen=True)
class Chunk:
    offset: float  # seconds since the response headers arrived
    data: bytes


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    scheme: str
    host: str
    port: int
    path: str  # without the query string
    query: tuple[tuple[str, str], ...]
    headers: Headers
    body: bytes
    http_version: str = "HTTP/1.1"

    @property
    def url(self) -> str:
        default_port = {"http": 80, "https": 443}.get(self.scheme)
        authority = self.host if self.port == default_port else f"{self.host}:{self.port}"
        query = f"?{urlencode(self.query)}" if self.query else ""
        return f"{self.scheme}://{authority}{self.path}{query}"

    def redacted(self, redactor: Redactor) -> RecordedRequest:
        return replace(
            self,
            path=redactor.text(self.path),
            query=tuple(redactor.query(self.query)),
            headers=tuple(redactor.headers(self.headers)),
            body=_redact_bytes(self.body, redactor),
        )

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), "")


@dataclass(frozen=True)
class RecordedResponse:
    status: int
    reason: str
    headers: Headers
    body: bytes  # decoded body; for a streamed response, the chunks joined
    chunks: tuple[Chunk, ...] | None = None  # set for streamed responses (SSE, chunked)
    http_version: str = "HTTP/1.1"

    def headers_to_serve(self, drop: frozenset[str]) -> list[tuple[str, str]]:
        """The recorded headers minus those named in `drop` (lower case) and any holding a line break:
        a hostile cassette must not split a response or inject headers."""
        return [
            (k, v)
            for k, v in self.headers
            if k.lower() not in drop and not any(c in k or c in v for c in "\r\n") and k.strip()
        ]


@dataclass(frozen=True)
class Exchange:
    request: RecordedRequest
    response: RecordedResponse
    started: float = 0.0  # unix time the request was received
    duration: float = 0.0  # seconds until the response ended

    def redacted(self, redactor: Redactor) -> Exchange:
        """This exchange with every secret replaced by its placeholder (see proxy.redact)."""
        req, resp = self.request, self.response
        chunks = None
        if resp.chunks is not None:
            chunks = tuple(replace(c, data=_redact_bytes(c.data, redactor)) for c in resp.chunks)
        return replace(
            self,
            request=req.redacted(redactor),
            response=replace(
                resp,
                headers=tuple(redactor.headers(resp.headers)),
                body=b"".join(c.data for c in chunks)
                if chunks is not None
                else _redact_bytes(resp.body, redactor),
                chunks=chunks,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        req, resp = self.request, self.response
        response: dict[str, Any] = {
            "status": resp.status,
            "reason": resp.reason,
            "http_version": resp.http_version,
            "headers": [list(h) for h in resp.headers],
        }
        if resp.chunks is None:
            response["body"] = _body_to_json(resp.body)
        else:
            response["chunks"] = [{"t": round(c.offset, 6), **_body_to_json(c.data)} for c in resp.chunks]
        return {
            "v": FORMAT_VERSION,
            "started": self.started,
            "duration": round(self.duration, 6),
            "request": {
                "method": req.method,
                "scheme": req.scheme,
                "host": req.host,
                "port": req.port,
                "path": req.path,
                "query": [list(q) for q in req.query],
                "http_version": req.http_version,
                "headers": [list(h) for h in req.headers],
                "body": _body_to_json(req.body),
            },
            "response": response,
        }

    @classmethod
    def from_json(cls, obj: object) -> Exchange:
        """Parse one cassette line; raises CassetteError naming the offending field."""
        top = _dict(obj, "line")
        version = top.get("v")
        if version != FORMAT_VERSION:
            raise CassetteError(
                f"cassette format version {version!r} is not supported (this proxy reads version {FORMAT_VERSION})"
            )
        req = _dict(top.get("request"), "request")
        resp = _dict(top.get("response"), "response")
        chunks: tuple[Chunk, ...] | None = None
        if resp.get("chunks") is not None:
            chunks = tuple(
                Chunk(
                    offset=_number(c.get("t"), "response.chunks[].t"),
                    data=_body_from_json(c, "response.chunks[]"),
                )
                for c in (_dict(x, "response.chunks[]") for x in _list(resp["chunks"], "response.chunks"))
            )
            body = b"".join(c.data for c in chunks)
        else:
            body = _body_from_json(resp.get("body"), "response.body")
        return cls(
            request=RecordedRequest(
                method=_str(req.get("method"), "request.method"),
                scheme=_str(req.get("scheme"), "request.scheme"),
                host=_str(req.get("host"), "request.host"),
                port=_int(req.get("port"), "request.port"),
                path=_str(req.get("path"), "request.path"),
                query=_pairs(req.get("query", []), "request.query"),
                headers=_pairs(req.get("headers", []), "request.headers"),
                body=_body_from_json(req.get("body"), "request.body"),
                http_version=_str(req.get("http_version", "HTTP/1.1"), "request.http_version"),
            ),
            response=RecordedResponse(
                status=_int(resp.get("status"), "response.status"),
                reason=_str(resp.get("reason", ""), "response.reason"),
                headers=_pairs(resp.get("headers", []), "response.headers"),
                body=body,
                chunks=chunks,
                http_version=_str(resp.get("http_version", "HTTP/1.1"), "response.http_version"),
            ),
            started=_number(top.get("started", 0.0), "started"),
            duration=_number(top.get("duration", 0.0), "duration"),
        )._in_range()

    def _in_range(self) -> Exchange:
        if not 0 <= self.request.port <= 65535:
            raise CassetteError(f"request.port {self.request.port} is out of range (0-65535)")
        if not 100 <= self.response.status <= 999:
            raise CassetteError(f"response.status {self.response.status} is out of range (100-999)")
        return self


def read_exchanges(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> list[Exchange]:
    """Every exchange of the cassette at `path`, in recorded order. A missing file is an empty cassette."""
    return list(iter_exchanges(path, max_line_bytes))


def iter_exchanges(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Exchange]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as e:
        raise CassetteError(f"cannot read cassette {path}: {e.strerror}") from e
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(max_line_bytes + 1), b""), start=1):
            if len(raw) > max_line_bytes:
                raise CassetteError(f"{path}:{number}: line longer than {max_line_bytes} bytes; refusing it")
            if not raw.strip():
                continue
            try:
                exchange = Exchange.from_json(json.loads(raw))
            except RecursionError as e:
                raise CassetteError(f"{path}:{number}: nested too deeply to be an exchange") from e
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError and CassetteError are ValueErrors
                raise CassetteError(f"{path}:{number}: {e}") from e
            yield exchange


class CassetteWriter:
    """Appends exchanges to a cassette, one durable line each. The one writer of the format.

    `handle`, when given, is a file already opened for writing (an importer's fresh temporary file):
    the writer then writes there and never opens `path` itself, which only names it in messages."""

    def __init__(self, path: Path, handle: BinaryIO | None = None) -> None:
        self.path = path
        if handle is not None:
            self._handle: BinaryIO = handle
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("ab")
        except OSError as e:
            raise CassetteError(f"cannot open cassette {path} for writing: {e.strerror}") from e

    def write(self, exchange: Exchange) -> None:
        line = json.dumps(exchange.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self._handle.write(line + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as e:
            raise CassetteError(f"cannot write to cassette {self.path}: {e.strerror}") from e

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _redact_bytes(data: bytes, redactor: Redactor) -> bytes:
    return redactor.blob(data)  # binary bodies too: their ASCII parts can hold a key


def _body_to_json(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _body_from_json(obj: object, where: str) -> bytes:
    if obj is None:
        return b""
    body = _dict(obj, where)
    if "text" in body:
        return _str(body["text"], where + ".text").encode("utf-8")
    if "base64" in body:
        try:
            return base64.b64decode(_str(body["base64"], where + ".base64"), validate=True)
        except binascii.Error as e:
            raise CassetteError(f"{where}.base64 is not valid base64") from e
    raise CassetteError(f"{where} has neither 'text' nor 'base64'")


def _dict(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CassetteError(f"{where} must be an object")
    return obj


def _list(obj: object, where: str) -> list[Any]:
    if not isinstance(obj, list):
        raise CassetteError(f"{where} must be a list")
    return obj


def _str(obj: object, where: str) -> str:
    if not isinstance(obj, str):
        raise CassetteError(f"{where} must be a string")
    return obj


def _int(obj: object, where: str) -> int:
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise CassetteError(f"{where} must be an integer")
    return obj


def _number(obj: object, where: str) -> float:
    """A time in seconds: a finite number, not negative (replay sleeps and schedules with it)."""
    if not isinstance(obj, int | float) or isinstance(obj, bool):
        raise CassetteError(f"{where} must be a number")
    try:
        value = float(obj)
    except OverflowError as e:
        raise CassetteError(f"{where} is too large") from e
    if not math.isfinite(value) or value < 0:
        raise CassetteError(f"{where} must be a finite number of seconds >= 0")
    return value


def _pairs(obj: object, where: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in _list(obj, where):
        pair = _list(item, where + "[]")
        if len(pair) != 2:
            raise CassetteError(f"{where}[] must be [name, value] pairs")
        out.append((_str(pair[0], where + "[0]"), _str(pair[1], where + "[1]")))
    return tuple(out)
