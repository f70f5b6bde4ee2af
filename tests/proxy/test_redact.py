"""Keyed placeholders for secrets."""

from __future__ import annotations

import pytest

from proxy.redact import PLACEHOLDER_RE, Redactor

KEY = b"k" * 32
SECRETS = [
    "sk-proj-" + "a1B2" * 10,
    "sk-ant-api03-" + "x" * 40,
    "ghp_" + "A" * 36,
    "github_pat_" + "b" * 40,
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AIza" + "c" * 35,
    "hf_" + "d" * 34,
]


@pytest.mark.parametrize("secret", SECRETS)
def test_token_patterns_are_replaced_in_text(secret: str) -> None:
    r = Redactor(KEY)
    out = r.text(f'{{"key": "{secret}", "x": 1}}')
    assert secret not in out
    assert PLACEHOLDER_RE.search(out)


def test_placeholders_are_stable_per_key_and_distinct_across_keys() -> None:
    secret = SECRETS[0]
    assert Redactor(KEY).placeholder(secret) == Redactor(KEY).placeholder(secret)
    assert Redactor(KEY).placeholder(secret) != Redactor(b"other-key").placeholder(secret)
    assert Redactor(KEY).placeholder(secret) != Redactor(KEY).placeholder(SECRETS[1])
    assert Redactor(KEY).text(Redactor(KEY).text(secret)) == Redactor(KEY).text(secret)


def test_sensitive_headers_lose_their_value_authorization_keeps_its_scheme() -> None:
    r = Redactor(KEY)
    headers = dict(
        r.headers(
            [
                ("Authorization", "Bearer opaque-token-value"),
                ("x-api-key", "plain"),
                ("Cookie", "a=b"),
                ("X-Custom-Api-Key", "k"),
                ("content-type", "application/json"),
                ("anthropic-ratelimit-tokens-limit", "1000"),
            ]
        )
    )
    assert headers["Authorization"] == f"Bearer {r.placeholder('opaque-token-value', 'bearer')}"
    assert headers["x-api-key"] == r.placeholder("plain", "credential")
    assert headers["Cookie"] == r.placeholder("a=b", "credential")
    assert headers["X-Custom-Api-Key"] == r.placeholder("k", "credential")
    assert headers["content-type"] == "application/json"
    assert headers["anthropic-ratelimit-tokens-limit"] == "1000"


def test_query_secrets_and_bearer_in_text() -> None:
    r = Redactor(KEY)
    assert r.query([("key", "abc"), ("q", "hello")]) == [
        ("key", r.placeholder("abc", "credential")),
        ("q", "hello"),
    ]
    assert (
        r.text("Authorization: Bearer abc.def-ghi")
        == f"Authorization: Bearer {r.placeholder('abc.def-ghi', 'bearer')}"
    )


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Redactor(b"")
