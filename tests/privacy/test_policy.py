"""Policies, and the helpers for command lines and environments whose structure the detectors cannot see."""

from __future__ import annotations

import pytest

from proxy.redact import PLACEHOLDER_RE, Redactor
from runner.errors import PrivacyError
from runner.privacy import policy
from runner.privacy.policy import looks_like_token, redact_argv, redact_env_values

KEY = b"p" * 32
SK = "sk-proj-" + "Ab1" * 14


def test_redact_argv_replaces_credential_flag_values_whole_and_keeps_the_rest() -> None:
    r = Redactor(KEY)
    argv = [
        "agent", "--api-key", "plainvalue1", "--password=plainvalue2", "--model", "gpt-4o",
        "--db-pass", "plainvalue3", "--token-file", "tok.txt", SK, "https://ci:pw9pw9pw9@git.example.com/x",
        "-p", "8080",
    ]  # fmt: skip
    out = redact_argv(argv, r)
    joined = " ".join(out)
    for secret in ("plainvalue1", "plainvalue2", "plainvalue3", SK, "pw9pw9pw9"):
        assert secret not in joined
    assert out[0] == "agent" and out[1] == "--api-key" and PLACEHOLDER_RE.fullmatch(out[2])
    assert out[3].startswith("--password=REDACTED_")
    assert out[4:6] == ["--model", "gpt-4o"] and out[8:10] == ["--token-file", "tok.txt"]
    assert out[-2:] == ["-p", "8080"]  # -p is a port here, not a password
    assert redact_argv(out, r) == out  # idempotent


@pytest.mark.parametrize(
    ("argv", "secret"),
    [
        (["sshpass", "-p", "hunter2x", "ssh", "h"], "hunter2x"),
        (["sshpass", "-phunter2w", "ssh", "h"], "hunter2w"),
        (["/usr/bin/mysql", "-u", "root", "-phunter2y", "app"], "hunter2y"),
        (["redis-cli", "-a", "hunter2z", "ping"], "hunter2z"),
    ],
)
def test_redact_argv_knows_the_short_password_flags_of_some_programs(argv: list[str], secret: str) -> None:
    assert secret not in " ".join(redact_argv(argv, Redactor(KEY)))


def test_redact_env_values_masks_token_shaped_values_whatever_their_name() -> None:
    r = Redactor(KEY)
    env = {
        "NOTHING_TO_SEE": "x8KUCERkj9Zhx9PkOZAE",  # mixed-case random token
        "HEXY": "9f86d081884c7d659a2feaa0c55ad015",  # 32 hex digits
        "UPSTREAM": "https://u:pw5pw5pw5@host/x",
        "PLAIN_TOKEN": "short",  # denied by name
        "GIT_COMMIT": "6d1e5f2" + "a" * 33,  # a commit id: not a secret
        "PATH": "/usr/local/bin:/usr/bin",
        "MODEL": "claude-sonnet-4-20250514",
        "UUID": "550e8400-e29b-41d4-a716-446655440000",
    }
    out = redact_env_values(env, r)
    assert PLACEHOLDER_RE.fullmatch(out["NOTHING_TO_SEE"]) and PLACEHOLDER_RE.fullmatch(out["HEXY"])
    assert "pw5pw5pw5" not in out["UPSTREAM"] and PLACEHOLDER_RE.fullmatch(out["PLAIN_TOKEN"])
    for name in ("GIT_COMMIT", "PATH", "MODEL", "UUID"):
        assert out[name] == env[name]


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("x8KUCERkj9Zhx9PkOZAE", True),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True),
        ("9f86d081884c7d659a2feaa0c55ad015", True),
        ("9f86d081884c7d659a2feaa0c55ad015b2a1c3f4", False),  # 40 hex: a commit id
        ("/usr/lib/x86_64-linux-gnu", False),
        ("en_US.UTF-8", False),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAA1a", False),  # all three classes, no entropy
        ("hello world this is text", False),
    ],
)
def test_looks_like_token(value: str, token: bool) -> None:
    assert looks_like_token(value) is token


def test_policies_by_name() -> None:
    assert policy.get("default-v1").masks_key("GITHUB_TOKEN")
    assert not policy.get("default-v1").masks_key("max_tokens")
    with pytest.raises(PrivacyError, match="unknown redaction policy"):
        policy.get("nope")


def test_the_names_checked_before_a_recording_are_the_policies() -> None:
    assert tuple(policy._policies()) == policy.NAMES
    policy.check("strict-v1")
    with pytest.raises(PrivacyError, match="unknown redaction policy 'nope'; known: default-v1, strict-v1"):
        policy.check("nope")
