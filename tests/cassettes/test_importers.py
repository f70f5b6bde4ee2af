"""Importing vcrpy cassettes (made by vcrpy itself) and HAR files, then replaying them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
import vcr
from typer.testing import CliRunner

from proxy.cassette import read_exchanges
from runner.cassettes.importers import import_recording
from runner.cassettes.process import ProxyProcess, ProxySettings
from runner.cli import app
from runner.errors import UsageError
from tests.helpers.https_server import BINARY, https_server

SECRET = "sk-proj-" + "Q7" * 12


def har(tmp_path: Path) -> Path:
    doc = {
        "log": {
            "version": "1.2",
            "entries": [
                {
                    "startedDateTime": "2024-05-01T10:00:00.000Z",
                    "time": 120,
                    "request": {
                        "method": "POST",
                        "url": "https://api.example.com/v1/chat/completions?api_key=" + SECRET,
                        "httpVersion": "HTTP/2",
                        "headers": [
                            {"name": ":authority", "value": "api.example.com"},
                            {"name": "authorization", "value": f"Bearer {SECRET}"},
                        ],
                        "postData": {
                            "mimeType": "application/json",
                            "text": '{"model": "m", "messages": []}',
                        },
                    },
                    "response": {
                        "status": 200,
                        "statusText": "OK",
                        "httpVersion": "HTTP/2",
                        "headers": [{"name": "content-type", "value": "application/json"}],
                        "content": {"mimeType": "application/json", "text": '{"ok": true}'},
                    },
                },
                {
                    "startedDateTime": "2024-05-01T10:00:01.000Z",
                    "time": 5,
                    "request": {"method": "GET", "url": "http://cdn.example.com/blob", "headers": []},
                    "response": {
                        "status": 200,
                        "headers": [],
                        "content": {"encoding": "base64", "text": base64.b64encode(BINARY).decode()},
                    },
                },
            ],
        }
    }
    path = tmp_path / "session.har"
    path.write_text(json.dumps(doc))
    return path


def test_har_import_keeps_fields_and_redacts_secrets(tmp_path: Path) -> None:
    out = tmp_path / "http.jsonl"
    assert import_recording(har(tmp_path), out, "ab" * 16) == 2
    assert SECRET not in out.read_text()
    post, blob = read_exchanges(out)
    assert (post.request.method, post.request.host, post.request.port) == ("POST", "api.example.com", 443)
    assert post.request.query[0][0] == "api_key" and post.request.query[0][1].startswith("REDACTED_")
    assert [h[0] for h in post.request.headers] == ["authorization"]
    assert json.loads(post.response.body) == {"ok": True}
    assert post.duration == pytest.approx(0.12)
    assert (blob.request.scheme, blob.request.port, blob.response.body) == ("http", 80, BINARY)


def test_import_refuses_to_overwrite_and_names_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "http.jsonl"
    out.write_text("")
    with pytest.raises(UsageError, match="already exists"):
        import_recording(har(tmp_path), out)
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(UsageError, match="not a valid vcrpy cassette"):
        import_recording(bad, tmp_path / "new.jsonl")
    assert not (tmp_path / "new.jsonl").exists()


def test_cli_import_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "c" / "http.jsonl"
    result = CliRunner().invoke(app, ["cassette", "import", str(har(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"imported": 2, "out": str(out)}
    again = CliRunner().invoke(app, ["cassette", "import", str(har(tmp_path)), "--out", str(out)])
    assert again.exit_code == 2


@pytest.mark.slow
def test_vcrpy_cassette_imports_and_replays_byte_identical(tmp_path: Path) -> None:
    source = tmp_path / "vcr.yaml"
    with (
        https_server(tmp_path) as server,
        vcr.use_cassette(str(source), record_mode="all"),
        requests.Session() as s,
    ):
        s.trust_env = False
        s.verify = str(server.ca.cert_path)
        recorded = [
            s.get(f"{server.base}/binary").content,
            s.get(f"{server.base}/gzip").content,
            s.post(
                f"{server.base}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "vcr"}]},
            ).content,
        ]
    out = tmp_path / "http.jsonl"
    assert import_recording(source, out, "cd" * 16) == 3
    settings = ProxySettings("replay", out, tmp_path / "replay", redact_key="cd" * 16)
    with ProxyProcess(settings) as proxy, requests.Session() as s:
        s.trust_env = False
        s.proxies = {"https": proxy.url}
        s.verify = str(proxy.ca.cert_path if proxy.ca else "")
        replayed = [
            s.get(f"{server.base}/binary").content,
            s.get(f"{server.base}/gzip").content,
            s.post(
                f"{server.base}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "vcr"}]},
            ).content,
        ]
    assert replayed == recorded
    assert proxy.report is not None and proxy.report.served == 3 and proxy.report.misses == ()
