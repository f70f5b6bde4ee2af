"""Import recordings made by other tools (vcrpy YAML cassettes, HAR files) into our cassette format.

Input: a vcrpy cassette (`.yaml`/`.yml`) or a HAR file (`.har`, or JSON with a `log.entries` list).
Output: `cassettes/http.jsonl` written through proxy.cassette's one writer, every exchange redacted with
the given key, in the order of the source.
Rules: the source is untrusted and gets one UsageError (one line, naming it) for anything wrong:
- it is read only up to a size cap (256 MiB by default), checked before parsing;
- YAML is read with the safe loader, and aliases (`*name`) are refused: a 1 KB file of nested aliases
  expands to gigabytes once every exchange is written out;
- YAML nesting deeper than 100 levels (PyYAML is quadratic in it), JSON nesting too deep for the
  parser, numbers out of range, strings that are not text: all refused;
- every exchange must read back through proxy.cassette's reader, so the proxy can serve what we write.
The output appears complete or not at all: a fresh temporary file made with O_EXCL in the target folder
(never a predictable name, never through a symlink), then an atomic rename. An existing output is
refused unless `force`, and then replaced by the rename (a symlink there is replaced, not followed).
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from mitmproxy.net import encoding

from proxy.cassette import CassetteError, CassetteWriter, Exchange, RecordedRequest, RecordedResponse
from proxy.redact import Redactor, key_from_text
from runner.errors import UsageError

__all__ = ["MAX_IMPORT_BYTES", "import_recording"]

MAX_IMPORT_BYTES = 256 * 1024 * 1024
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_MAX_DEPTH = 100  # levels of YAML nesting; vcrpy writes 4
_MESSAGE_CHARS = 300  # an error names the problem, it does not echo the hostile file back


class _TooDeep(yaml.YAMLError):
    """Nesting deeper than _MAX_DEPTH: PyYAML's scanner is quadratic in it, its composer recursive."""


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (shared nodes are how a tiny YAML file expands without bound)
    and nesting deeper than _MAX_DEPTH (3,000 `[` took PyYAML 11 s; a recording needs a handful)."""

    _depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= _MAX_DEPTH:
            raise _TooDeep(f"more than {_MAX_DEPTH} nested [ or {{")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.AliasEvent = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            raise yaml.YAMLError(
                f"YAML aliases (*{event.anchor}) are not accepted, line {_line(event)}; expand them"
            )
        if self._depth >= _MAX_DEPTH:
            raise _TooDeep(f"more than {_MAX_DEPTH} nested levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return str(mark.line + 1) if mark is not None else "?"


def import_recording(
    source: Path, out: Path, redact_key: str = "", *, force: bool = False, max_bytes: int = MAX_IMPORT_BYTES
) -> int:
    """Convert `source` into a new cassette at `out`; returns how many exchanges were written."""
    if os.path.lexists(out) and not force:
        raise UsageError(f"{out} already exists; choose another --out, or pass --force to replace it")
    if out.is_dir() and not out.is_symlink():
        raise UsageError(f"{out} is a folder; --out takes the cassette file to write")
    exchanges = list(_read(source, max_bytes))
    redactor = Redactor(key_from_text(redact_key))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".importing")
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror}; choose another --out") from e
    tmp, done = Path(name), False
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the mode a plain open() would give; mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle, CassetteWriter(tmp, handle=handle) as writer:
            for exchange in exchanges:
                writer.write(exchange.redacted(redactor))
        os.replace(tmp, out)
        done = True
    except (CassetteError, OSError) as e:
        raise UsageError(f"cannot write {out}: {_one_line(str(e))}") from e
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
    return len(exchanges)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _one_line(text: str) -> str:
    """`text` on one short line, without control characters (parser errors quote the input)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= _MESSAGE_CHARS else flat[: _MESSAGE_CHARS - 3] + "..."


def _read_text(source: Path, max_bytes: int) -> str:
    too_big = f"{source} is larger than the import limit of {max_bytes} bytes; raise it with --max-mib N"
    try:
        with source.open("rb") as f:
            if os.fstat(f.fileno()).st_size > max_bytes:
                raise UsageError(too_big)
            data = f.read(max_bytes + 1)  # a pipe or a growing file has no size to check beforehand
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror}") from e
    if len(data) > max_bytes:
        raise UsageError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"cannot read {source}: not UTF-8 text (byte {e.start})") from e


def _read(source: Path, max_bytes: int) -> Iterator[Exchange]:
    text = _read_text(source, max_bytes)
    vcrpy = source.suffix.lower() in {".yaml", ".yml"}
    try:
        if vcrpy:
            exchanges = _from_vcrpy(yaml.load(text, Loader=_StrictLoader))  # a SafeLoader subclass
        else:
            exchanges = _from_har(json.loads(text))
        for exchange in exchanges:
            yield _readable(exchange)
    except (RecursionError, _TooDeep) as e:
        raise UsageError(f"{source} is nested too deeply to be a recording; check the file") from e
    except (
        yaml.YAMLError,
        ValueError,  # CassetteError, JSONDecodeError, UnicodeError, binascii.Error
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        OverflowError,
    ) as e:
        kind = "vcrpy cassette" if vcrpy else "HAR file"
        what = f"{type(e).__name__}: {_one_line(str(e))}"
        raise UsageError(f"{source} is not a valid {kind} ({what}); check the file") from e


def _readable(exchange: Exchange) -> Exchange:
    """`exchange` if the proxy's reader takes back what the writer makes of it, else CassetteError."""
    line = json.dumps(exchange.to_json(), ensure_ascii=False, allow_nan=False).encode("utf-8")
    Exchange.from_json(json.loads(line))
    return exchange


def _from_vcrpy(doc: Any) -> Iterator[Exchange]:
    if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
        raise ValueError("no 'interactions' list at the top level")
    for item in doc["interactions"]:
        req, resp = item["request"], item["response"]
        req_headers = _vcr_headers(req.get("headers"))
        resp_headers = _vcr_headers(resp.get("headers"))
        body = resp.get("body") or {}
        yield Exchange(
            request=_request(req["method"], req["uri"], req_headers, _bytes(req.get("body")), "HTTP/1.1"),
            response=RecordedResponse(
                status=_status(resp["status"]["code"]),
                reason=str(resp["status"].get("message", "")),
                headers=resp_headers,
                body=_decoded(_bytes(body.get("string")), resp_headers),
            ),
        )


def _from_har(doc: Any) -> Iterator[Exchange]:
    entries = doc["log"]["entries"]
    if not isinstance(entries, list):
        raise ValueError("log.entries is not a list")
    for entry in entries:
        req, resp = entry["request"], entry["response"]
        post = req.get("postData") or {}
        content = resp.get("content") or {}
        raw = content.get("text") or ""
        body = base64.b64decode(raw, validate=True) if content.get("encoding") == "base64" else raw.encode()
        yield Exchange(
            request=_request(
                req["method"],
                req["url"],
                _har_headers(req.get("headers")),
                str(post.get("text", "")).encode(),
                _version(req.get("httpVersion", "HTTP/1.1")),
            ),
            response=RecordedResponse(
                status=_status(resp["status"]),
                reason=str(resp.get("statusText", "")),
                headers=_har_headers(resp.get("headers")),
                body=body,  # HAR keeps the decoded content
                http_version=_version(resp.get("httpVersion", "HTTP/1.1")),
            ),
            started=_har_time(entry.get("startedDateTime")),
            duration=_seconds(float(entry.get("time") or 0) / 1000),
        )


def _request(
    method: str, url: str, headers: tuple[tuple[str, str], ...], body: bytes, version: str
) -> RecordedRequest:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ValueError(f"unsupported HTTP method {str(method)[:40]!r}")
    if not isinstance(url, str):
        raise ValueError("a URL must be text")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"unsupported URL {url[:80]!r}")
    return RecordedRequest(
        method=method.upper(),
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or (443 if parts.scheme == "https" else 80),
        path=parts.path or "/",
        query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        http_version=version,
    )


def _vcr_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for name, values in (headers or {}).items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name), str(value)))
    return tuple(pairs)


def _har_headers(headers: Iterable[Any] | None) -> tuple[tuple[str, str], ...]:
    # HTTP/2 pseudo-headers (":authority"...) describe the request line, which we keep separately.
    return tuple(
        (str(h["name"]), str(h["value"])) for h in headers or () if not str(h["name"]).startswith(":")
    )


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"a body must be text or binary, not {type(value).__name__}")


def _decoded(body: bytes, headers: tuple[tuple[str, str], ...]) -> bytes:
    """vcrpy keeps bodies as sent on the wire; our cassette keeps them decoded (see cassette-format.md)."""
    coding = next((v for k, v in headers if k.lower() == "content-encoding"), "").strip().lower()
    if not coding or coding == "identity" or not body:
        return body
    try:
        decoded = encoding.decode(body, coding)
    except ValueError:
        return body  # already decoded (vcrpy's decode_compressed_response)
    return decoded if isinstance(decoded, bytes) else body


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"a status code must be a number, not {str(value)[:20]!r}")
    status = int(value)
    if not 100 <= status <= 999:
        raise ValueError(f"status code {status} is out of range (100-999)")
    return status


def _version(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 32:
        raise ValueError("httpVersion must be a short text such as 'HTTP/1.1'")
    return value


def _seconds(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, not {value}")
    return value


def _har_time(value: Any) -> float:
    """The unix time of a HAR date, or 0 (unknown) for one that is missing, malformed or before 1970."""
    if not isinstance(value, str):
        return 0.0
    try:
        started = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return 0.0
    return started if math.isfinite(started) and started >= 0 else 0.0
