"""The sidecar's entry point: it waits for its claim, gives up when idle, refuses a malformed claim, and
once claimed runs the cassette proxy exactly as mitmdump would (ready line, report on SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.claim import CLAIM_FILE, read_claim, wait_for_claim
from proxy.ready import find_ready
from proxy.report import read_report
from runner.cassettes.process import ProxySettings, mitmdump_args
from runner.cassettes.tls import make_ca

ROOT = Path(__file__).resolve().parents[2]


def _launch(folder: Path, idle: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "proxy.claim", str(folder), idle],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def test_a_claim_is_an_object_with_a_list_of_strings(tmp_path: Path) -> None:
    claim = tmp_path / CLAIM_FILE
    claim.write_text(json.dumps({"argv": ["--listen-port", "0"]}))
    assert read_claim(claim) == ["--listen-port", "0"]
    for bad in ([], {"argv": "x"}, {"argv": [1]}, {"other": []}):
        claim.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="expected"):
            read_claim(claim)


def test_the_wait_ends_with_the_claim_or_after_the_idle_time(tmp_path: Path) -> None:
    assert wait_for_claim(tmp_path, idle=0.05) is None
    (tmp_path / CLAIM_FILE).write_text("{}")
    assert wait_for_claim(tmp_path, idle=0.05) == tmp_path / CLAIM_FILE


def test_an_idle_sidecar_exits_cleanly_and_a_malformed_claim_is_refused(tmp_path: Path) -> None:
    idle = _launch(tmp_path, "0")
    assert idle.wait(60) == 0
    (tmp_path / CLAIM_FILE).write_text('{"argv": "--mode upstream"}')
    refused = _launch(tmp_path, "30")
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "unreadable claim" in out


def test_a_claimed_sidecar_serves_the_cassette_and_reports_on_sigterm(tmp_path: Path) -> None:
    proc = _launch(tmp_path, "60")
    try:
        time.sleep(0.5)  # waiting: mitmproxy imported, nothing listens yet
        assert proc.poll() is None
        make_ca(tmp_path / "confdir")
        cassette = tmp_path / "cassette.jsonl"
        cassette.touch()
        settings = ProxySettings("replay", cassette, tmp_path)
        argv = mitmdump_args(
            settings, confdir=tmp_path / "confdir", cassette=cassette,
            report=tmp_path / "report.json", listen_port=0,
        )  # fmt: skip
        (tmp_path / "claim.tmp").write_text(json.dumps({"argv": argv}))
        os.replace(tmp_path / "claim.tmp", tmp_path / CLAIM_FILE)
        assert proc.stdout is not None
        seen = ""
        while find_ready(seen) is None:
            line = proc.stdout.readline()
            assert line, f"the proxy stopped before it was ready:\n{seen}"
            seen += line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        report = read_report(tmp_path / "report.json")
        assert (report.mode, report.served, report.exchanges) == ("replay", 0, 0)
    finally:
        proc.kill()
