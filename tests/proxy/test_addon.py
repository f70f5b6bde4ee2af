"""The addon inside mitmproxy's test harness (taddons + tflow): record, replay, misses, the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.connection import ConnectionState
from mitmproxy.test import taddons, tflow

from proxy.addon import MISS_HEADER, CassetteProxy
from proxy.cassette import CassetteWriter, Exchange, RecordedRequest, RecordedResponse, read_exchanges
from proxy.redact import Redactor
from proxy.report import read_report

KEY = "00112233445566778899aabbccddeeff"
SECRET = "sk-live-" + "Zz9" * 8


def chat_request(content: str, **extra: object) -> RecordedRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    return RecordedRequest(
        method="POST",
        scheme="https",
        host="api.example.com",
        port=443,
        path="/v1/chat/completions",
        query=(),
        headers=(("content-type", "application/json"),),
        body=json.dumps(body).encode(),
    )


def reply(text: str, status: int = 200) -> RecordedResponse:
    return RecordedResponse(
        status, "OK", (("content-type", "application/json"),), json.dumps({"a": text}).encode()
    )


def write(path: Path, *exchanges: Exchange) -> Path:
    with CassetteWriter(path) as writer:
        for exchange in exchanges:
            writer.write(exchange.redacted(Redactor(bytes.fromhex(KEY))))
    return path


def live_flow(request: RecordedRequest) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request = http.Request.make(
        request.method,
        f"{request.scheme}://{request.host}:{request.port}{request.path}",
        request.body,
        dict(request.headers),
    )
    return flow


def replay(addon: CassetteProxy, request: RecordedRequest) -> http.Response:
    flow = live_flow(request)
    addon.request(flow)
    assert flow.response is not None
    return flow.response


@pytest.fixture
def replaying(tmp_path: Path):  # type: ignore[no-untyped-def]
    def start(*exchanges: Exchange, **options: object) -> tuple[CassetteProxy, taddons.context]:
        cassette = write(tmp_path / "http.jsonl", *exchanges)
        addon = CassetteProxy()
        tctx = taddons.context(Proxyserver(), addon)  # Proxyserver owns connection_strategy
        tctx.configure(
            addon,
            cassette_mode="replay",
            cassette_path=str(cassette),
            cassette_report=str(tmp_path / "report.json"),
            cassette_redact_key=KEY,
            **options,
        )
        return addon, tctx

    return start


def test_replay_forces_lazy_connections_and_no_upstream_cert(replaying) -> None:  # type: ignore[no-untyped-def]
    _, tctx = replaying(Exchange(chat_request("hi"), reply("hello")))
    assert tctx.options.connection_strategy == "lazy"
    assert tctx.options.upstream_cert is False


def test_identical_requests_are_served_in_recorded_order_then_miss(replaying) -> None:  # type: ignore[no-untyped-def]
    addon, _ = replaying(
        Exchange(chat_request("same"), reply("first")),
        Exchange(chat_request("other"), reply("unrelated")),
        Exchange(chat_request("same"), reply("second")),
    )
    assert json.loads(replay(addon, chat_request("same")).content or b"") == {"a": "first"}
    assert json.loads(replay(addon, chat_request("same")).content or b"") == {"a": "second"}
    third = replay(addon, chat_request("same"))
    assert third.status_code == 502
    assert third.headers[MISS_HEADER] == "every recorded response for this request was already served"
    assert addon.misses[0].candidates[0].already_served


def test_volatile_fields_are_ignored_but_the_prompt_is_not(replaying) -> None:  # type: ignore[no-untyped-def]
    recorded = chat_request(
        "q", user="alice", stream_options={"include_usage": True}, metadata={"user_id": "1"}
    )
    addon, _ = replaying(Exchange(recorded, reply("yes")), Exchange(recorded, reply("again")))
    live = chat_request("q", user="bob", metadata={"user_id": "2"})
    assert replay(addon, live).status_code == 200
    different = replay(addon, chat_request("another question"))
    assert different.status_code == 502
    candidate = addon.misses[0].candidates[0]
    assert [f.matcher for f in candidate.failed] == ["body"]
    assert '"content": "another question"' in candidate.failed[0].difference


def test_a_custom_ignore_list_replaces_the_defaults(replaying) -> None:  # type: ignore[no-untyped-def]
    addon, _ = replaying(Exchange(chat_request("q", seed=1), reply("yes")), cassette_ignore_fields=["seed"])
    assert replay(addon, chat_request("q", seed=2)).status_code == 200


def test_miss_names_the_nearest_requests_and_the_failing_matcher(replaying, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    addon, _ = replaying(Exchange(chat_request("q"), reply("yes")))
    moved = chat_request("q")
    moved = RecordedRequest(**{**moved.__dict__, "path": "/v2/chat/completions"})
    response = replay(addon, moved)
    assert response.status_code == 502
    body = json.loads(response.content or b"")
    assert body["error"]["nearest"][0]["failed"] == ["path"]
    addon.done()
    report = read_report(tmp_path / "report.json")
    assert report.served == 0 and report.exchanges == 1
    assert report.misses[0].url == "https://api.example.com/v2/chat/completions"
    assert report.misses[0].candidates[0].failed[0].matcher == "path"
    assert [u.index for u in report.unused] == [0]


def test_secrets_match_by_placeholder(replaying) -> None:  # type: ignore[no-untyped-def]
    addon, _ = replaying(Exchange(chat_request(f"key is {SECRET}"), reply("ok")))
    assert replay(addon, chat_request(f"key is {SECRET}")).status_code == 200


def test_report_counts_served_and_unused(replaying, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    addon, _ = replaying(Exchange(chat_request("a"), reply("1")), Exchange(chat_request("b"), reply("2")))
    replay(addon, chat_request("b"))
    addon.done()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["served"] == 1
    assert report["misses"] == []
    assert [u["index"] for u in report["unused"]] == [0]
    assert report["refused_upstream"] == []


def test_gzip_response_is_served_encoded_again(replaying) -> None:  # type: ignore[no-untyped-def]
    recorded = RecordedResponse(
        200, "OK", (("content-encoding", "gzip"), ("content-length", "999")), b"plain text"
    )
    addon, _ = replaying(Exchange(chat_request("z"), recorded))
    served = replay(addon, chat_request("z"))
    assert served.raw_content != b"plain text"
    assert served.content == b"plain text"
    assert served.headers["content-length"] == str(len(served.raw_content or b""))


def test_record_writes_redacted_exchanges_and_stream_chunks(tmp_path: Path) -> None:
    addon = CassetteProxy()
    cassette = tmp_path / "rec.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette_mode="record", cassette_path=str(cassette), cassette_redact_key=KEY)
        flow = tflow.tflow(resp=True)
        flow.request.headers["authorization"] = f"Bearer {SECRET}"
        flow.request.content = json.dumps({"api_key": SECRET}).encode()
        addon.response(flow)

        streamed = tflow.tflow(resp=True)
        streamed.response.headers.clear()
        streamed.response.headers["content-type"] = "text/event-stream"
        addon.responseheaders(streamed)
        assert callable(streamed.response.stream)
        for part in (b"data: 1\n\n", b"data: 2\n\n", b""):
            assert streamed.response.stream(part) == part
        addon.response(streamed)
    text = cassette.read_text()
    assert SECRET not in text
    first, second = read_exchanges(cassette)
    placeholder = Redactor(bytes.fromhex(KEY)).text(SECRET)
    assert first.request.header("authorization") == f"Bearer {placeholder}"
    assert json.loads(first.request.body) == {"api_key": placeholder}
    assert second.response.chunks is not None
    assert [c.data for c in second.response.chunks] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert second.response.body == b"data: 1\n\ndata: 2\n\n"


def test_replay_refuses_a_missing_cassette(tmp_path: Path) -> None:
    addon = CassetteProxy()
    with taddons.context(addon) as tctx, pytest.raises(Exception, match="does not exist"):
        tctx.configure(addon, cassette_mode="replay", cassette_path=str(tmp_path / "none.jsonl"))


def test_addon_loads_as_a_script_from_a_plain_directory(tmp_path: Path) -> None:
    folder = tmp_path / "opt" / "cassette-proxy"
    shutil.copytree(Path(__file__).parents[2] / "proxy", folder, ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "import sys; from mitmproxy.addons.script import load_script\n"
        f"m = load_script({str(folder / 'addon.py')!r})\n"
        "print(type(m.addons[0]).__name__, sys.modules['proxy'].__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CassetteProxy", str(folder / "__init__.py")]


def test_hostile_headers_cannot_split_the_served_response(replaying) -> None:  # type: ignore[no-untyped-def]
    hostile = RecordedResponse(
        200, "OK\r\nX-Evil: 1", (("x-ok", "1"), ("x-bad", "a\r\nSet-Cookie: s=1")), b"{}"
    )
    addon, _ = replaying(Exchange(chat_request("h"), hostile))
    served = replay(addon, chat_request("h"))
    assert served.headers.get("x-ok") == "1"
    assert "x-bad" not in served.headers and "set-cookie" not in served.headers
    assert "\n" not in served.reason


def test_head_keeps_the_recorded_length_and_204_gets_none(replaying) -> None:  # type: ignore[no-untyped-def]
    head = RecordedRequest("HEAD", "https", "api.example.com", 443, "/file", (), (), b"")
    empty = RecordedRequest("DELETE", "https", "api.example.com", 443, "/file", (), (), b"")
    addon, _ = replaying(
        Exchange(head, RecordedResponse(200, "OK", (("content-length", "1234"),), b"")),
        Exchange(empty, RecordedResponse(204, "No Content", (), b"")),
    )
    served_head = replay(addon, head)
    assert served_head.headers["content-length"] == "1234" and served_head.raw_content == b""
    assert "content-length" not in replay(addon, empty).headers


def _record_stream(addon: CassetteProxy, parts: list[bytes], content_type: str = "text/event-stream") -> None:
    streamed = tflow.tflow(resp=True)
    streamed.response.headers.clear()
    streamed.response.headers["content-type"] = content_type
    streamed.response.headers["transfer-encoding"] = "chunked"
    addon.responseheaders(streamed)
    assert callable(streamed.response.stream)
    for part in parts:
        streamed.response.stream(part)
    addon.response(streamed)


def test_a_secret_split_across_stream_chunks_is_redacted_in_every_chunk(tmp_path: Path) -> None:
    cassette, originals = tmp_path / "rec.jsonl", tmp_path / "work" / "originals.jsonl"
    originals.parent.mkdir()
    addon = CassetteProxy()
    cut = len('data: {"x":"') + 10
    event = f'data: {{"x":"{SECRET}"}}\n\n'.encode()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            cassette_mode="record",
            cassette_path=str(cassette),
            cassette_redact_key=KEY,
            cassette_secrets=str(originals),
        )
        _record_stream(addon, [b"data: first\n\n", event[:cut], event[cut:], b"data: [DONE]\n\n"])
    (exchange,) = read_exchanges(cassette)
    assert exchange.response.chunks is not None
    placeholder = Redactor(bytes.fromhex(KEY)).text(SECRET)
    datas = [c.data for c in exchange.response.chunks]
    # The cut inside the secret moves to the start of its placeholder; the other cuts stay.
    assert datas == [
        b"data: first\n\n",
        b'data: {"x":"',
        f'{placeholder}"}}\n\n'.encode(),
        b"data: [DONE]\n\n",
    ]
    for piece in (SECRET[:10], SECRET[10:], SECRET[4:14]):
        assert piece.encode() not in cassette.read_bytes()
    # The original goes to the private side file, never next to the cassette.
    assert oct(originals.stat().st_mode & 0o777) == "0o600"
    (line,) = originals.read_text().splitlines()
    assert json.loads(line) == {"token": placeholder, "kind": "openai-key", "value": SECRET}


def test_binary_bodies_are_scanned_for_secrets(tmp_path: Path) -> None:
    cassette = tmp_path / "rec.jsonl"
    addon = CassetteProxy()
    blob = b"\x00\xff\xfe PK\x03\x04" + SECRET.encode() + b"\x00\x81 tail"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette_mode="record", cassette_path=str(cassette), cassette_redact_key=KEY)
        flow = tflow.tflow(resp=True)
        flow.request.content = blob
        flow.response.headers["content-type"] = "application/octet-stream"
        flow.response.content = blob[::-1] + b" " + blob
        addon.response(flow)
        _record_stream(addon, [blob[:12], blob[12:]], content_type="application/octet-stream")
    first, second = read_exchanges(cassette)
    placeholder = Redactor(bytes.fromhex(KEY)).text(SECRET).encode()
    assert first.request.body == blob.replace(SECRET.encode(), placeholder)
    assert first.response.body.endswith(b" " + blob.replace(SECRET.encode(), placeholder))
    assert second.response.chunks is not None
    assert b"".join(c.data for c in second.response.chunks) == blob.replace(SECRET.encode(), placeholder)
    assert SECRET[:12].encode() not in cassette.read_bytes()
    assert base64_free_of(cassette, SECRET)


def base64_free_of(cassette: Path, secret: str) -> bool:
    """No body of the cassette, decoded from its base64 or text, holds `secret` or a half of it."""
    for exchange in read_exchanges(cassette):
        datas = [exchange.request.body, exchange.response.body]
        datas += [c.data for c in exchange.response.chunks or ()]
        half = len(secret) // 2
        if any(s.encode() in d for d in datas for s in (secret, secret[:half], secret[half:])):
            return False
    return True


def test_the_key_can_come_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "redact.key"
    key_file.write_text(KEY + "\n")
    cassette = tmp_path / "rec.jsonl"
    addon = CassetteProxy()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon, cassette_mode="record", cassette_path=str(cassette), cassette_redact_key_file=str(key_file)
        )
        flow = tflow.tflow(resp=True)
        flow.request.content = SECRET.encode()
        addon.response(flow)
    (exchange,) = read_exchanges(cassette)
    assert exchange.request.body == Redactor(bytes.fromhex(KEY)).text(SECRET).encode()


def _streaming(addon: CassetteProxy, parts: list[bytes]) -> http.HTTPFlow:
    """A streamed response in flight, `parts` passed through; its end not yet stamped by mitmproxy."""
    flow = tflow.tflow(resp=True)
    assert flow.response is not None
    flow.response.headers.clear()
    flow.response.headers["content-type"] = "text/event-stream"
    flow.response.timestamp_end = None
    addon.responseheaders(flow)
    assert callable(flow.response.stream)
    for part in parts:
        assert flow.response.stream(part) == part
    return flow


def _recording(tmp_path: Path) -> tuple[CassetteProxy, taddons.context]:
    addon = CassetteProxy()
    tctx = taddons.context(addon)
    tctx.configure(
        addon,
        cassette_mode="record",
        cassette_path=str(tmp_path / "rec.jsonl"),
        cassette_report=str(tmp_path / "report.json"),
        cassette_redact_key=KEY,
    )
    return addon, tctx


def _gone(flow: http.HTTPFlow, message: str = "Client disconnected.") -> None:
    flow.error = tflow.terr(message)
    flow.client_conn.state = ConnectionState.CAN_WRITE  # mitmproxy read the client's end of file


@pytest.mark.parametrize("after", ["response", "error", "done"])
def test_a_stream_is_written_when_its_upstream_body_ends_and_only_then(tmp_path: Path, after: str) -> None:
    addon, tctx = _recording(tmp_path)
    with tctx:
        flow = _streaming(addon, [b"data: 1\n\n", b"data: [DONE]\n\n"])
        assert read_exchanges(tmp_path / "rec.jsonl") == []
        assert flow.response is not None and callable(flow.response.stream)
        flow.response.stream(b"")  # mitmproxy's call at the end of the upstream body, before any hook
        assert len(read_exchanges(tmp_path / "rec.jsonl")) == 1
        flow.response.timestamp_end = 1.0
        if after == "response":
            addon.response(flow)
        elif after == "error":
            _gone(flow)
            addon.error(flow)
        addon.done()
    (exchange,) = read_exchanges(tmp_path / "rec.jsonl")
    assert exchange.response.body == b"data: 1\n\ndata: [DONE]\n\n"
    assert read_report(tmp_path / "report.json").exchanges == 1


def test_an_http2_stream_waits_for_the_response_hook_as_empty_frames_come_mid_stream(tmp_path: Path) -> None:
    addon, tctx = _recording(tmp_path)
    with tctx:
        flow = _streaming(addon, [])
        assert flow.response is not None and callable(flow.response.stream)
        flow.response.http_version = "HTTP/2.0"
        for part in (b"data: 1\n\n", b"", b"data: 2\n\n", b""):
            flow.response.stream(part)
        assert read_exchanges(tmp_path / "rec.jsonl") == []
        addon.response(flow)
        addon.done()
    (exchange,) = read_exchanges(tmp_path / "rec.jsonl")
    assert exchange.response.body == b"data: 1\n\ndata: 2\n\n"


@pytest.mark.parametrize("message", ["Client disconnected.", "stream reset by client (CANCEL)"])
def test_a_stream_the_client_leaves_early_is_written_as_what_reached_it(tmp_path: Path, message: str) -> None:
    addon, tctx = _recording(tmp_path)
    with tctx:
        flow = _streaming(addon, [b"data: 1\n\n", b"data: [DONE]\n\n"])
        if message.startswith("Client"):
            _gone(flow, message)
        else:
            flow.error = tflow.terr(message)  # an HTTP/2 client resets the stream, its connection stays
        addon.error(flow)
        assert len(read_exchanges(tmp_path / "rec.jsonl")) == 1
        addon.response(flow)  # not again
        addon.done()
    (exchange,) = read_exchanges(tmp_path / "rec.jsonl")
    assert exchange.response.chunks is not None
    assert [c.data for c in exchange.response.chunks] == [b"data: 1\n\n", b"data: [DONE]\n\n"]


def test_a_stream_the_upstream_breaks_off_is_not_written(tmp_path: Path) -> None:
    addon, tctx = _recording(tmp_path)
    with tctx:
        flow = _streaming(addon, [b"data: 1\n\n"])
        flow.error = tflow.terr("server closed connection")  # the client is still connected
        addon.error(flow)
        addon.done()
    assert read_exchanges(tmp_path / "rec.jsonl") == []
    assert read_report(tmp_path / "report.json").exchanges == 0


def test_streams_in_flight_when_the_proxy_stops_are_written_before_the_report(tmp_path: Path) -> None:
    addon, tctx = _recording(tmp_path)
    with tctx:
        _streaming(addon, [b"data: 1\n\n"])
        _streaming(addon, [b"data: 2\n\n", b"data: [DONE]\n\n"])
        addon.done()
    assert [e.response.body for e in read_exchanges(tmp_path / "rec.jsonl")] == [
        b"data: 1\n\n",
        b"data: 2\n\ndata: [DONE]\n\n",
    ]
    assert read_report(tmp_path / "report.json").exchanges == 2
