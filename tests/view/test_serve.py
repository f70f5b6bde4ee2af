"""`runner view` served: 127.0.0.1 only, its own files only, Host checked, Ctrl-C stops it cleanly."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.privacy import crypto
from runner.privacy.mask import PrivacyOptions
from runner.view import serve, site
from tests.view.test_site import GITHUB_TOKEN
from tests.view.viewfixtures import session_pack


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    resp = conn.getresponse()
    result = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return result


def test_serves_the_page_on_loopback_with_a_strict_policy(tmp_path: Path) -> None:
    files = site.page_files(site.build([session_pack(tmp_path)]))
    server = serve.make_server(files)
    assert server.server_address[0] == "127.0.0.1"
    with running(server) as port:
        status, headers, body = _get(port, "/")
        assert status == 200 and body == files["index.html"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert _get(port, "/view.js")[2] == files["view.js"]
        assert _get(port, "/../etc/passwd")[0] == 404
        assert _get(port, "/", host=f"attacker.example:{port}")[0] == 421  # DNS rebinding


def _serve_and_fetch(args: list[str], sig: int = signal.SIGINT) -> tuple[str, bytes, str, int]:
    """Run `runner view ARGS`, fetch its page, press Ctrl-C (or send `sig`): (first line, page, stdout rest,
    exit code)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "view", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        status, _, body = _get(port, "/")
        assert status == 200 and b"view-data" in body
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    return line, body, out, proc.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_the_url_and_stops_cleanly_on_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    line, _, out, code = _serve_and_fetch([str(session_pack(tmp_path))], sig)
    assert "masked" in line and code == 0 and "stopped" in out


def test_served_view_reveals_with_the_key(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    ring_file = tmp_path / "acme.keys"
    crypto.save_keyring(ring, ring_file)
    pack = session_pack(tmp_path, text=f" {GITHUB_TOKEN}", privacy=PrivacyOptions(keyring=ring), reason="fix")
    _, masked, _, _ = _serve_and_fetch([str(pack)])
    assert GITHUB_TOKEN.encode() not in masked
    line, revealed, _, code = _serve_and_fetch([str(pack), "--key", str(ring_file)])
    assert "REVEALED" in line and code == 0
    assert GITHUB_TOKEN.encode() in revealed
