"""The recording proxy's CA made one session ahead: claimed once, only fresh and only a real folder of ours."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from runner.recorder import spareca
from runner.recorder.proxy import RecordingProxy


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RUNNER_SPARE_CA", raising=False)
    return tmp_path / "home"


def test_a_spare_is_claimed_once_into_the_sessions_confdir(home: Path, tmp_path: Path) -> None:
    spareca.make_spare()
    ready = home / "spare-ca" / "ready"
    made = (ready / "mitmproxy-ca-cert.pem").read_bytes()
    assert stat.S_IMODE(os.stat(ready / "mitmproxy-ca.pem").st_mode) == 0o600
    ca = spareca.claim(tmp_path / "s1" / "confdir")
    assert ca is not None and ca.cert_pem == made
    assert stat.S_IMODE(os.stat(ca.confdir / "mitmproxy-ca.pem").st_mode) == 0o600
    assert b"PRIVATE KEY" in (ca.confdir / "mitmproxy-ca.pem").read_bytes()
    assert list((home / "spare-ca").iterdir()) == []  # nothing of it is left behind
    assert spareca.claim(tmp_path / "s2" / "confdir") is None  # a CA never serves two sessions


def test_a_waiting_spare_is_kept_and_each_spare_is_a_new_ca(home: Path, tmp_path: Path) -> None:
    spareca.make_spare()
    first = (home / "spare-ca" / "ready" / "mitmproxy-ca.pem").read_bytes()
    spareca.make_spare()  # one waits: left alone
    assert (home / "spare-ca" / "ready" / "mitmproxy-ca.pem").read_bytes() == first
    assert spareca.claim(tmp_path / "c1") is not None
    spareca.make_spare()
    assert (home / "spare-ca" / "ready" / "mitmproxy-ca.pem").read_bytes() != first


def test_spares_can_be_turned_off(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spareca.make_spare()
    monkeypatch.setenv("RUNNER_SPARE_CA", "0")
    assert spareca.claim(tmp_path / "c") is None
    spareca.make_spare()
    assert not (tmp_path / "c").exists()


def test_an_old_spare_is_removed_not_used(home: Path, tmp_path: Path) -> None:
    spareca.make_spare()
    cert = home / "spare-ca" / "ready" / "mitmproxy-ca-cert.pem"
    old = cert.stat().st_mtime - spareca.MAX_AGE_S - 60
    os.utime(cert, (old, old))
    assert spareca.claim(tmp_path / "c") is None
    assert not (tmp_path / "c").exists() and list((home / "spare-ca").iterdir()) == []


def test_a_link_in_place_of_the_spare_is_not_followed(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    spareca.make_spare()
    (home / "spare-ca" / "ready").rename(elsewhere)
    (home / "spare-ca" / "ready").symlink_to(elsewhere)
    assert spareca.claim(tmp_path / "c") is None
    assert not (tmp_path / "c").exists()
    assert (elsewhere / "mitmproxy-ca.pem").is_file()  # the link was removed, not what it pointed at
    assert list((home / "spare-ca").iterdir()) == []


def test_the_recording_proxy_starts_on_the_spare_and_its_stop_makes_the_next(
    home: Path, tmp_path: Path
) -> None:
    spareca.make_spare()
    spare = (home / "spare-ca" / "ready" / "mitmproxy-ca-cert.pem").read_bytes()
    proxy = RecordingProxy(b"k" * 32, upstream_ca=None, record_loopback=False, set_environ=False)
    proxy.start(tmp_path / "work")
    try:
        bundle = Path(proxy.env["SSL_CERT_FILE"]).read_bytes()
        assert bundle.endswith(spare)  # the agent trusts the spare's CA, which the proxy signs with
        assert not (home / "spare-ca" / "ready").exists()
    finally:
        proxy.stop()
    next_one = (home / "spare-ca" / "ready" / "mitmproxy-ca-cert.pem").read_bytes()
    assert next_one != spare


def test_what_a_killed_session_left_is_swept_by_the_next_spare(home: Path) -> None:
    folder = home / "spare-ca"
    for name in ("staging-0123456789abcdef", "claimed-fedcba9876543210", "claimed-recent0000000000"):
        (folder / name).mkdir(parents=True)
        (folder / name / "mitmproxy-ca.pem").write_text("key")
    hour_ago = time.time() - 3700
    for name in ("staging-0123456789abcdef", "claimed-fedcba9876543210"):
        os.utime(folder / name, (hour_ago, hour_ago))
    spareca.make_spare()
    assert sorted(p.name for p in folder.iterdir()) == ["claimed-recent0000000000", "ready"]
