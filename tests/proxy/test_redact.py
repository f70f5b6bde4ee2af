"""Keyed placeholders for secrets."""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import re
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proxy.detectors import DETECTORS, Detector
from proxy.redact import PLACEHOLDER_RE, Redactor, base64_text
from tests.helpers.secret_corpus import corpus

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


@pytest.mark.parametrize("key", [KEY, b"k", b"k" * 64, b"k" * 65, bytes(range(200))])
def test_placeholder_is_the_keyed_hmac_of_the_secret_every_time_and_each_use_is_reported(key: bytes) -> None:
    found: list[tuple[str, str, str]] = []
    r = Redactor(key, found=lambda *a: found.append(a))
    secret = "caf\u00e9-\udcff-" + SECRETS[0]  # a lone surrogate (surrogateescape) too
    expected = hmac.new(key, secret.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:16]
    tokens = [r.placeholder(secret, "bearer"), r.placeholder(secret, "bearer"), r.placeholder(secret)]
    assert tokens == [f"REDACTED_bearer_{expected}"] * 2 + [f"REDACTED_secret_{expected}"]
    assert found == [("bearer", secret, tokens[0])] * 2 + [("secret", secret, tokens[2])]


def test_kind_of_gives_the_same_answer_when_asked_again() -> None:
    r = Redactor(KEY)
    key = "sk-proj-" + "ab12" * 10
    assert [r.kind_of(key, "bearer"), r.kind_of(key, "bearer")] == ["openai-key", "openai-key"]
    assert [r.kind_of("opaque", "bearer"), r.kind_of("opaque", "credential")] == ["bearer", "credential"]


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


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("SECRET_KEY=x8KUCERkj9Zhx9Pk", "x8KUCERkj9Zhx9Pk"),
        ("export DB_PASS=hunter2hunter2", "hunter2hunter2"),
        ("PGPASSWORD=zzz999yyy", "zzz999yyy"),
        ("deploy --password hunter2 --host db", "hunter2"),
        ("cli --token abc999def --verbose", "abc999def"),
        ("cli --api-key=k3yk3yk3y", "k3yk3yk3y"),
        ('{"args": ["agent", "--password", "pl41nfl4g", "--verbose"]}', "pl41nfl4g"),  # argv as a JSON list
        ("['agent', '--token', 'pl41nfl4g']", "pl41nfl4g"),
        ("sshpass -p s3cretpw ssh build@ci", "s3cretpw"),
        ("mysql -u root -ps3cretpw app", "s3cretpw"),
        ('"body": "{\\"password\\": \\"jZ43Kjr2ZZ\\", \\"user\\": \\"bob\\"}"', "jZ43Kjr2ZZ"),
        ('"{\\\\\\"password\\\\\\": \\\\\\"twice-escaped\\\\\\"}"', "twice-escaped"),
        ('password = "correct horse battery"', "horse"),
        ('{"password" => "rubyhash1"}', "rubyhash1"),
        ('curl -H "X-Custom-Auth: abc123xyz" https://x', "abc123xyz"),
        ("X-Api-Token: tok999tok", "tok999tok"),
        ("Cookie: sid=abcdef; theme=dark", "sid=abcdef"),
        ('password: str = "hunter2hunter2"', "hunter2hunter2"),  # an annotated assignment keeps its value out
        ("token: strongsecret99", "strongsecret99"),  # a value that merely starts like a type name
        ("api_key: SecretStr = 'k3yk3yk3yk3y'", "k3yk3yk3yk3y"),
    ],
)
def test_forms_the_first_detectors_missed(text: str, secret: str) -> None:
    out = Redactor(KEY).text(text)
    assert secret not in out and PLACEHOLDER_RE.search(out)


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1000",
        "token_count=5",
        "bypass=abc",
        "run --token-file path/to/file",
        '["agent", "--token", "--verbose"]',
        "password: null",
        "password=$DB_PASS",
        "x-ratelimit-tokens: 100",
        "anthropic-ratelimit-tokens-limit: 5",
        "secretary: Jane",
        "tiktoken==0.12.0",  # a pinned package of a pip freeze
        "if token == expected:",
        "    def login(self, token: str) -> None:",  # type annotations in code are names, not values
        "password: Optional[str] = None",
        "    api_key: SecretStr",
        "def f(secret_key: dict[str, int], token: int | None = None): ...",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    assert Redactor(KEY).text(text) == text


def test_custom_credential_headers_lose_their_value_and_look_alikes_keep_it() -> None:
    r = Redactor(KEY)
    fields = [
        ("X-Custom-Auth", "v1"), ("X-Api-Token", "v2"), ("x-authtoken", "v3"), ("X-Session-Id", "v4"),
        ("x-goog-api-key", "v5"), ("Cookie2", "v6"), ("X-Secret", "v7"), ("x-db-password", "v8"),
    ]  # fmt: skip
    kept = [
        (":authority", "api.example.com"), ("www-authenticate", 'Bearer realm="x"'), ("author", "me"),
        ("x-ratelimit-remaining-tokens", "99"), ("keep-alive", "timeout=5"), ("content-type", "text/plain"),
    ]  # fmt: skip
    out = r.headers(fields + kept)
    assert [v for _, v in out[: len(fields)]] == [r.placeholder(v, "credential") for _, v in fields]
    assert out[len(fields) :] == kept


def test_bytes_that_are_not_utf8_are_scanned_and_kept_around_the_placeholders() -> None:
    r = Redactor(KEY)
    secret = SECRETS[0].encode()
    data = b"\x89PNG\x00\xff caf\xe9 " + secret + b" \xfe\x00"
    out = r.blob(data)
    assert secret not in out
    assert out.startswith(b"\x89PNG\x00\xff caf\xe9 REDACTED_openai-key_") and out.endswith(b" \xfe\x00")
    plain = b"\x00\xff nothing here"
    assert r.blob(plain) is plain


def test_binary_cassette_bodies_are_redacted() -> None:
    from proxy.cassette import Exchange, RecordedRequest, RecordedResponse

    body = b"\x00\xff" + SECRETS[2].encode() + b"\x00"
    x = Exchange(
        RecordedRequest("POST", "https", "h", 443, "/", (), (), body),
        RecordedResponse(200, "OK", (), body),
    )
    red = x.redacted(Redactor(KEY))
    assert SECRETS[2].encode() not in red.request.body + red.response.body
    assert red.request.body.startswith(b"\x00\xffREDACTED_")


def test_a_base64_body_is_decoded_and_replaced_whole_when_it_holds_a_secret() -> None:
    import base64

    r = Redactor(KEY)
    secret_body = base64.b64encode(f'{{"token": "{SECRETS[0]}"}}'.encode()).decode()
    urlsafe = base64.urlsafe_b64encode(b"password=hunter2hunter2&x=1").decode().rstrip("=")
    assert r.text(secret_body) == r.placeholder(secret_body, "base64")
    assert r.text(urlsafe).startswith("REDACTED_base64_")
    harmless = base64.b64encode(b"nothing to hide in this one").decode()
    binary = base64.b64encode(bytes(range(256))).decode()
    assert r.text(harmless) == harmless and r.text(binary) == binary


@pytest.mark.parametrize("seed", range(6))
def test_a_detector_with_a_reach_finds_on_a_long_line_what_a_search_of_the_whole_line_finds(
    seed: int,
) -> None:
    """`reach` only narrows where the pattern is tried (around anchor hits), never what it finds: long
    one-line texts (a request body) mixing every planted context, key words that do not assign, several
    keys run together and names the anchor spans over (`token_token=`, `private_key=`)."""
    rnd = random.Random(seed)
    pieces = [p.context for p in corpus() if p.kind != "base64"] + [
        "token_token=abcdef123", "private_key = 'k3y-v4lue'", "ACCESS-KEY: AKxyz12345", "max_tokens=100",
        "passwords are long", "api_key:int", '"secret": "s3cr3t!"', "def f(token: str) -> None:",
        'x\\"password\\": \\"hunter22\\"', "Pass=ok1234 secretkey=qwerty12 credential=abc", "ü password=grün123",
    ]  # fmt: skip
    text = " ".join(rnd.choice(pieces) for _ in range(400))  # one line, ~10 KB
    # Then the same pieces over many lines, and short texts (a JSON value, a header).
    lines = "".join(rnd.choice(pieces) + rnd.choice([" ", "\n", ", ", "\n\n", ""]) for _ in range(400))
    short = [lines[i : i + rnd.randint(1, 300)] for i in range(0, len(lines), 97)]
    with_reach = [d for d in DETECTORS if d.reach is not None]
    assert {d.kind for d in with_reach} >= {"assignment", "email"}
    key = b"k" * 32
    for detector in with_reach:
        plain = replace(detector, reach=None)
        for sample in (text, lines, *short):
            assert Redactor(key, (detector,)).text(sample) == Redactor(key, (plain,)).text(sample)


def by_parts(redactor: Redactor, text: str) -> str:
    """What the redactor is defined to give (a text that is not one base64 blob): each detector in turn,
    its pattern substituted in each part between placeholders alone."""
    for detector in redactor._detectors:
        groups = detector.pattern.groupindex
        replace_one = functools.partial(redactor._replace, detector.kind, "s" in groups, "c" in groups)
        parts = PLACEHOLDER_RE.split(text)[:: PLACEHOLDER_RE.groups + 1]
        between = [m.group(0) for m in PLACEHOLDER_RE.finditer(text)] + [""]
        text = "".join(
            detector.pattern.sub(replace_one, part) + p for part, p in zip(parts, between, strict=True)
        )
    return text


PIECES = [p.context for p in corpus() if p.kind != "base64"] + [
    "REDACTED_email_0123456789abcdef", "REDACTED_0123456789abcdef", "user@", "@example.com", "dev", ".com",
    "Bearer ", "password=", "token: ", "sk-proj-", "x" * 300,
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " ", "\n", "=", "@", ".", "\n\n"]))))
def test_texts_holding_placeholders_are_redacted_as_each_part_between_them_alone(
    pieces: list[tuple[str, str]],
) -> None:
    """The one-pass paths (a line-local pattern over the whole text with its placeholders blanked out,
    searched around anchor hits) give the definition's result, and report the same secrets in order."""
    text = "".join(piece + glue for piece, glue in pieces)
    assume(base64_text(text) is None)
    seen: list[str] = []
    expected: list[str] = []
    got = Redactor(KEY, DETECTORS, lambda kind, value, token: seen.append(token)).text(text)
    assert got == by_parts(Redactor(KEY, DETECTORS, lambda kind, value, token: expected.append(token)), text)
    assert seen == expected


def test_a_pattern_matching_empty_text_is_applied_part_by_part_and_reports_each_secret_once() -> None:
    detector = Detector("odd", re.compile(r"(?:xy)*"))  # line-local, searched everywhere
    text = "xy a xyxy zb REDACTED_email_0123456789abcdef xyz\nz REDACTED_0123456789abcdef xy" * 3
    seen: list[str] = []
    expected: list[str] = []
    got = Redactor(KEY, (detector,), lambda kind, value, token: seen.append(value)).text(text)
    assert got == by_parts(
        Redactor(KEY, (detector,), lambda kind, value, token: expected.append(value)), text
    )
    assert seen == expected and "xy" in seen


def test_anchors_are_looked_for_in_each_part_between_placeholders() -> None:
    """A phone number's anchor (`-0199` not followed by a word character) right before a placeholder: the
    detector sees the part alone, so its anchor must too (it was looked for across the placeholder)."""
    r = Redactor(KEY)
    text = "call (415) 555-0199REDACTED_email_0123456789abcdef"
    assert r.text(text) == f"call {r.placeholder('(415) 555-0199', 'phone')}REDACTED_email_0123456789abcdef"
