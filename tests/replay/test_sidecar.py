from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.cassette import CassetteWriter, Exchange, RecordedRequest, RecordedResponse
from proxy.ready import ready_line
from runner.errors import PackError, ProxyError
from runner.replay.sidecar import Sidecar, has_loopback


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
    assert not has_loopback(remote) and has_loopback(local)
    bypass = Sidecar(None, tmp_path, tmp_path / "ca.pem", route_loopback=False).workload_env()
    routed = Sidecar(None, tmp_path, tmp_path / "ca.pem", route_loopback=True).workload_env()
    assert "127.0.0.1" in bypass["NO_PROXY"] and routed["NO_PROXY"] == routed["no_proxy"] == ""
    assert routed["HTTPS_PROXY"] == "http://127.0.0.1:8080" and routed["SSL_CERT_FILE"] == "/runner/ca/ca.pem"


def test_a_malformed_cassette_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": 99}\n')
    with pytest.raises(PackError, match=r"bad\.jsonl: unreadable cassette"):
        has_loopback(bad)


class _Starting:
    """A container whose followed log shows the ready line after a few lines, or which exits first."""

    def __init__(self, lines: int, exits: bool = False) -> None:
        self.lines, self.exits, self.followed = lines, exits, 0

    def logs(
        self, tail: int | None = None, stream: bool = False, follow: bool = False
    ) -> Iterator[bytes] | bytes:
        if not stream:
            return b"loading addon\nTraceback: boom\n"[-200:]
        return self._follow()

    def _follow(self) -> Iterator[bytes]:
        for _ in range(self.lines):
            self.followed += 1
            yield b"loading addon\n"
        if self.exits:
            yield b"Traceback: boom\n"
            return  # the stream ends: the container stopped
        self.followed += 1
        yield ready_line("replay", [("127.0.0.1", 8080)]).encode()[:10]  # a line may come in pieces
        yield ready_line("replay", [("127.0.0.1", 8080)]).encode()[10:] + b"\n"
        time.sleep(60)  # still running: the wait must not need the stream to end


def test_a_sidecar_started_without_waiting_is_ready_only_once_its_proxy_listens(tmp_path: Path) -> None:
    starting = _Starting(lines=3)
    Sidecar(starting, tmp_path, tmp_path / "ca.pem", started_at=time.monotonic()).wait_ready()  # type: ignore[arg-type]
    assert starting.followed == 4
    with pytest.raises(ProxyError, match="did not become ready; its log:\nloading addon\nTraceback: boom"):
        Sidecar(
            _Starting(2, exits=True), tmp_path, tmp_path / "ca.pem", started_at=time.monotonic()
        ).wait_ready()  # type: ignore[arg-type]


def test_a_sidecar_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    silent = _Starting(lines=10**9)
    silent._follow = lambda: iter(lambda: time.sleep(0.01) or b"loading\n", None)  # type: ignore[method-assign]
    with pytest.raises(ProxyError, match="did not become ready"):
        Sidecar(
            silent, tmp_path, tmp_path / "ca.pem", start_timeout=0.2, started_at=time.monotonic()
        ).wait_ready()  # type: ignore[arg-type]
