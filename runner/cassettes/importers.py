"""Import recordings made by other tools (vcrpy YAML cassettes, HAR files) into our cassette format.

Input: a vcrpy cassette (`.yaml`/`.yml`) or a HAR file (`.har`, or JSON with a `log.entries` list).
Output: `cassettes/http.jsonl` written through proxy.cassette's one writer, every exchange redacted with
the given key, in the order of the source. Rules: the source is untrusted (YAML is read with the safe
loader, every field is checked); the output appears complete or not at all (temp file, then rename);
an existing output is never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from mitmproxy.net import encoding

from proxy.cassette import CassetteError, CassetteWriter, Exchange, RecordedRequest, RecordedResponse
from proxy.redact import Redactor, key_from_text
from runner.errors import UsageError

__all__ = ["import_recording"]


def import_recording(source: Path, out: Path, redact_key: str = "") -> int:
    """Convert `source` into a new cassette at `out`; returns how many exchanges were written."""
    if out.exists():
        raise UsageError(f"{out} already exists; choose another --out or remove it first")
    exchanges = list(_read(source))
    redactor = Redactor(key_from_text(redact_key))
    tmp = out.with_name(f".{out.name}.importing")
    try:
        with CassetteWriter(tmp) as writer:
            for exchange in exchanges:
                writer.write(exchange.redacted(redactor))
        os.replace(tmp, out)
    except CassetteError as e:
        raise UsageError(f"cannot write {out}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return len(exchanges)


def _read(source: Path) -> Iterator[Exchange]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {source}: {e}") from e
    try:
        if source.suffix.lower() in {".yaml", ".yml"}:
            yield from _from_vcrpy(yaml.safe_load(text))
        else:
            yield from _from_har(json.loads(text))
    except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        kind = "vcrpy cassette" if source.suffix.lower() in {".yaml", ".yml"} else "HAR file"
        raise UsageError(f"{source} is not a valid {kind} ({type(e).__name__}: {e}); check the file") from e


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
                status=int(resp["status"]["code"]),
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
                req.get("httpVersion", "HTTP/1.1"),
            ),
            response=RecordedResponse(
                status=int(resp["status"]),
                reason=str(resp.get("statusText", "")),
                headers=_har_headers(resp.get("headers")),
                body=body,  # HAR keeps the decoded content
                http_version=str(resp.get("httpVersion", "HTTP/1.1")),
            ),
            started=_har_time(entry.get("startedDateTime")),
            duration=float(entry.get("time") or 0) / 1000,
        )


def _request(
    method: str, url: str, headers: tuple[tuple[str, str], ...], body: bytes, version: str
) -> RecordedRequest:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    return RecordedRequest(
        method=str(method).upper(),
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


def _har_time(value: Any) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
