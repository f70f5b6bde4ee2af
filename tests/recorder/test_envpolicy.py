"""Each environment decision and its reason: runner-internal, user-secret, user-allow, allowlisted,
host-specific, name rules, detectors, too-large, not-secret; and what the snapshot keeps."""

from __future__ import annotations

import pytest

from runner.recorder.envpolicy import MAX_VALUE, decide, secret_kind

OPENAI = "sk-proj-plantedOpenAIkey0123456789abcdefXYZ"


@pytest.mark.parametrize(
    ("name", "value", "action", "reason"),
    [
        ("AGENT_MODE", "fast", "verbatim", "not-secret"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1", "verbatim", "not-secret"),
        ("MSWEA_CONFIGURED", "true", "verbatim", "not-secret"),
        ("TOKENIZERS_PARALLELISM", "false", "verbatim", "not-secret"),
        ("GIT_AUTHOR_NAME", "Agent", "verbatim", "not-secret"),
        ("LANG", "C.UTF-8", "verbatim", "allowlisted"),
        ("PATH", "/home/u/.venv/bin:/usr/bin", "dropped", "host-specific"),
        ("HOME", "/home/u", "dropped", "host-specific"),
        ("SSH_AUTH_SOCK", "/tmp/ssh-x/agent.1", "dropped", "host-specific"),
        ("HTTPS_PROXY", "http://corp-proxy:3128", "dropped", "runner-internal"),
        ("RUNNER_KEYRING", "/etc/acme.keys", "dropped", "runner-internal"),
        ("OPENAI_API_KEY", OPENAI, "placeholder", "name-rule:key"),
        ("GH_TOKEN", "abc", "placeholder", "name-rule:token"),
        ("DB_PASSWORD", "hunter2", "placeholder", "name-rule:password"),
        ("CLIENT_SECRET", "x", "placeholder", "name-rule:secret"),
        ("SENTRY_DSN", "https://k@o1.ingest.sentry.io/1", "placeholder", "name-rule:dsn"),
        ("MY_SETTING", OPENAI, "placeholder", "detector:openai-key"),
        ("UPSTREAM", "https://bob:s3cretpw@git.example.com/x.git", "placeholder", "detector:url-credentials"),
        ("BIG_BLOB", "x" * (MAX_VALUE + 1), "dropped", "too-large"),
        ("BIG_API_KEY", "k" * (MAX_VALUE + 1), "dropped", "too-large"),  # no shape past the schema's bound
    ],
)
def test_each_variable_gets_its_decision_and_reason(name: str, value: str, action: str, reason: str) -> None:
    decision = decide({name: value}).decisions[name]
    assert (decision.action, decision.reason) == (action, reason)
    assert (decision.shape is not None) == (action == "placeholder")
    if decision.shape is not None:
        assert decision.shape.length == len(value)


def test_user_choices_override_rules_but_not_runner_internal_variables() -> None:
    env = {"OPENAI_API_KEY": OPENAI, "PATH": "/usr/bin", "AGENT_MODE": "fast", "SSL_CERT_FILE": "/x.pem",
           "PROXY_PORT": "1"}  # fmt: skip
    policy = decide(
        env,
        runner_names={"PROXY_PORT"},
        allow={"OPENAI_API_KEY", "PATH", "SSL_CERT_FILE"},
        secret={"AGENT_MODE"},
    )
    d = policy.decisions
    assert (d["OPENAI_API_KEY"].action, d["OPENAI_API_KEY"].reason) == ("verbatim", "user-allow")
    assert (d["PATH"].action, d["PATH"].reason) == ("verbatim", "user-allow")
    assert (d["AGENT_MODE"].action, d["AGENT_MODE"].reason) == ("placeholder", "user-secret")
    assert d["AGENT_MODE"].shape is not None and d["AGENT_MODE"].shape.length == 4
    assert d["SSL_CERT_FILE"].reason == d["PROXY_PORT"].reason == "runner-internal"
    assert policy.verbatim == {"OPENAI_API_KEY": OPENAI, "PATH": "/usr/bin"}


def test_the_snapshot_keeps_verbatim_values_and_never_a_placeholder_variable() -> None:
    policy = decide({"AGENT_MODE": "fast", "OPENAI_API_KEY": OPENAI, "PATH": "/usr/bin"})
    assert {"AGENT_MODE", "PATH"} <= policy.snapshot_allow  # PATH: on the snapshot's own allowlist
    assert "OPENAI_API_KEY" not in policy.snapshot_allow
    assert (
        "OPENAI_API_KEY" not in decide({"OPENAI_API_KEY": OPENAI}, secret={"OPENAI_API_KEY"}).snapshot_allow
    )


def test_secret_kind_uses_the_privacy_detectors() -> None:
    assert secret_kind(OPENAI) == "openai-key"
    assert secret_kind("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop") == "jwt"
    assert secret_kind("fast") is None and secret_kind("") is None
