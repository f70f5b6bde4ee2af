"""The settings `runner record` checks before its agent starts, and the privacy options built from them
once it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import PrivacyError, RecordError
from runner.recorder.preflight import preflight

ROOT = Path(__file__).resolve().parents[2]


def _keyring(tmp_path: Path) -> Path:
    ring = tmp_path / "ring.json"
    subprocess.run(
        [sys.executable, "-m", "runner", "keys", "new", "--tenant", "t", "--out", str(ring)],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return ring


def test_the_options_carry_the_checked_keyring_and_the_other_settings(tmp_path: Path) -> None:
    ring = _keyring(tmp_path)
    environ = {"RUNNER_KEYRING": str(ring), "RUNNER_SIGN": "1", "RUNNER_PRINCIPAL": "ann", "HOME": "/h"}
    checked = preflight(tmp_path / "s.tar.zst", environ)
    ring.unlink()  # read once, before the agent: the options do not read it again
    options = checked.options()
    assert options.keyring is not None and options.keyring is checked.keyring
    assert (options.sign, options.principal, options.policy) == (True, "ann", "default-v1")
    assert preflight(tmp_path / "s.tar.zst", {"RUNNER_REDACTION_POLICY": "off"}).options().policy is None


@pytest.mark.parametrize(
    ("environ", "error", "match"),
    [
        ({"RUNNER_REDACTION_POLICY": "nope"}, PrivacyError, "nope"),
        ({"RUNNER_KEYRING": "/nonexistent/ring.json"}, PrivacyError, "ring.json"),
        ({"RUNNER_ENCRYPT_PAYLOADS": "true"}, RecordError, "needs a keyring"),
    ],
)
def test_a_bad_setting_is_refused_before_the_agent(
    tmp_path: Path, environ: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        preflight(tmp_path / "s.tar.zst", environ)
