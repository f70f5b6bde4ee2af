from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cassette import CassetteWriter, Exchange, RecordedRequest, RecordedResponse
from runner.errors import PackError
from runner.replay.sidecar import Sidecar, _has_loopback


def _cassette(path: Path, *hosts: str) -> Path:
    with CassetteWriter(path) as writer:
        for host in hosts:
            writer.write(
                Exchange(
                    RecordedRequest("GET", "http", host, 8000, "/v1/models", (), (), b""),
                    RecordedResponse(200, "OK", (), b"{}"),
                )
            )
    return path


def test_loopback_goes_through_the_proxy_only_when_recorded(tmp_path: Path) -> None:
    remote = _cassette(tmp_path / "remote.jsonl", "api.openai.com")
    local = _cassette(tmp_path / "local.jsonl", "api.openai.com", "127.0.0.1")
    assert not _has_loopback(remote) and _has_loopback(local)
    bypass = Sidecar(None, tmp_path, tmp_path / "ca.pem", route_loopback=False).workload_env()
    routed = Sidecar(None, tmp_path, tmp_path / "ca.pem", route_loopback=True).workload_env()
    assert "127.0.0.1" in bypass["NO_PROXY"] and routed["NO_PROXY"] == routed["no_proxy"] == ""
    assert routed["HTTPS_PROXY"] == "http://127.0.0.1:8080" and routed["SSL_CERT_FILE"] == "/runner/ca/ca.pem"


def test_a_malformed_cassette_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": 99}\n')
    with pytest.raises(PackError, match=r"bad\.jsonl: unreadable cassette"):
        _has_loopback(bad)
