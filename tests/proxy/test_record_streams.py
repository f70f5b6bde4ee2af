"""A streamed response is recorded even when the client stops reading at `data: [DONE]` and goes away at once,
and streams in flight when the proxy is stopped (SIGTERM) are written before its report.

The recording proxy runs as a process (proxy/main.py), as the launchers run it; the upstream is a plain
HTTP server on 127.0.0.1 that can hold back the end of its chunked body until the proxy hangs up, which
forces the order that loses the exchange when it is recorded only at mitmproxy's `response` hook.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.cassette import read_exchanges
from proxy.ready import find_ready
from proxy.report import read_report

PROGRAM = Path(__file__).parents[2] / "proxy" / "main.py"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]
BODY = b'{"model": "m", "stream": true}'


@contextmanager
def upstream(hold_end: bool) -> Iterator[int]:
    """An SSE server on a free loopback port. With `hold_end`, the last chunk of the body (`0\\r\\n\\r\\n`)
    is sent only once the proxy closed the connection, i.e. never while the proxy is listening."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for event in EVENTS:
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            try:
                while hold_end and conn.recv(65536):
                    pass
                conn.sendall(b"0\r\n\r\n")
                while conn.recv(65536):  # until the proxy hangs up
                    pass
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@contextmanager
def recording_proxy(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    options = {
        "cassette_mode": "record",
        "cassette_path": tmp_path / "http.jsonl",
        "cassette_report": tmp_path / "report.json",
        "cassette_redact_key": "k",
    }
    settings = [arg for name, value in options.items() for arg in ("--set", f"{name}={value}")]
    proc = subprocess.Popen(
        [sys.executable, str(PROGRAM), "--listen-host", "127.0.0.1", "--listen-port", "0", *settings],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        log = ""
        while (ready := find_ready(log)) is None:
            line = proc.stdout.readline()
            assert line, f"the proxy exited before it was ready:\n{log}"
            log += line
        yield ready.port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def read_to_done(proxy_port: int, server_port: int, close: bool = True) -> socket.socket:
    """POST through the proxy and read the stream up to `data: [DONE]`; then hang up at once, as an OpenAI
    client does when its process ends, unless `close` is False."""
    client = socket.create_connection(("127.0.0.1", proxy_port), timeout=60)
    client.sendall(
        b"POST http://127.0.0.1:%d/v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (server_port, server_port, len(BODY), BODY)
    )
    got = b""
    while b"data: [DONE]\n\n" not in got:
        data = client.recv(65536)
        assert data, got
        got += data
    if close:
        client.close()
    return client


def assert_recorded(tmp_path: Path, count: int) -> None:
    exchanges = read_exchanges(tmp_path / "http.jsonl")
    assert len(exchanges) == count
    for exchange in exchanges:
        assert exchange.request.body == BODY
        assert exchange.response.chunks is not None
        assert exchange.response.body == b"".join(EVENTS)
    assert read_report(tmp_path / "report.json").exchanges == count


def test_a_client_that_hangs_up_at_done_before_the_body_ends_is_recorded(tmp_path: Path) -> None:
    with upstream(hold_end=True) as server, recording_proxy(tmp_path) as (port, proc):
        for _ in range(5):
            read_to_done(port, server)
        log = stop(proc)
    assert_recorded(tmp_path, 5)
    assert "recording the 3 chunks it got" in log


def test_streams_whose_client_hangs_up_at_done_are_each_recorded_once(tmp_path: Path) -> None:
    with upstream(hold_end=False) as server, recording_proxy(tmp_path) as (port, proc):
        for _ in range(30):
            read_to_done(port, server)
        stop(proc)  # at once: the last exchanges may still be in flight
    assert_recorded(tmp_path, 30)


def test_a_stream_in_flight_when_the_proxy_stops_is_written_before_the_report(tmp_path: Path) -> None:
    with (
        upstream(hold_end=True) as server,
        recording_proxy(tmp_path) as (port, proc),
        read_to_done(port, server, close=False),  # the client still listens when the proxy stops
    ):
        log = stop(proc)
    assert_recorded(tmp_path, 1)
    assert "the proxy stops during POST" in log
