"""The recording proxy of a session: the environment it gives the agent, and os.environ set and restored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.recorder.proxy import RecordingProxy


def _proxy(set_environ: bool) -> RecordingProxy:
    return RecordingProxy(b"k" * 32, upstream_ca=None, record_loopback=True, set_environ=set_environ)


def test_a_command_inherits_os_environ_unless_given_an_environment_or_its_own_variables() -> None:
    inherit = _proxy(set_environ=True)
    assert inherit.command_env(None, {}) is None
    assert inherit.command_env(None, {"MODE": "x"}) == {**os.environ, "MODE": "x"}
    given = _proxy(set_environ=False)
    assert given.command_env({"A": "1"}, {}) == {"A": "1"}
    assert given.command_env(None, {}) == dict(os.environ)


def test_os_environ_holds_the_proxy_variables_while_it_runs_and_is_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://before.invalid:1")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    proxy = _proxy(set_environ=True)
    proxy.start(tmp_path)
    try:
        assert os.environ["HTTPS_PROXY"] == proxy.env["HTTPS_PROXY"] != "http://before.invalid:1"
        assert os.environ["NO_PROXY"] == proxy.env["NO_PROXY"] == ""  # loopback is recorded too
        assert proxy.agent_env({"A": "1"}) == {"A": "1", **proxy.env}
    finally:
        assert proxy.stop() == 0  # no exchange
    assert os.environ["HTTPS_PROXY"] == "http://before.invalid:1"
    assert "CURL_CA_BUNDLE" not in os.environ
    assert proxy.stop() == 0  # a second stop does nothing


def test_a_proxy_that_dies_while_starting_is_a_failure_sentence_not_an_error(tmp_path: Path) -> None:
    proxy = _proxy(set_environ=False)
    proxy.start(tmp_path)  # returns before mitmdump runs
    assert proxy.env["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    assert proxy._process is not None and proxy._process._proc is not None
    proxy._process._proc.kill()
    assert proxy.stop() == 0
    assert proxy.failure is not None and "never started" in proxy.failure
