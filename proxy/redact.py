"""Secrets out, stable placeholders in: the detectors and the redactor shared by the proxy and the packer.

Input: text (URLs, bodies, logs, prompts), header lists and query pairs. Output: the same with every
secret replaced by `REDACTED_<kind>_<16 hex>`, where the hex is an HMAC-SHA256 of the secret under a key
(the tenant's redaction key when packs are built, the pack's key in the proxy). The same secret always
gives the same placeholder under the same key, so joins across a pack still work, while the secret itself
never reaches disk. `collapse` maps every placeholder to `REDACTED_<kind>`, so a request or an output
carrying one placeholder matches another of the same kind whatever key made it.

Rules:
- headers named in SENSITIVE_HEADERS (or whose name looks like a credential) lose their whole value;
  an `Authorization: <scheme> <credentials>` keeps its scheme so the cassette stays readable;
- query parameters named in SENSITIVE_PARAMS lose their value;
- every `Detector` in DETECTORS (provider keys, cloud and forge tokens, JWTs, private key blocks,
  Bearer/Basic credentials, user:pass@ in URLs, `password=`-style assignments, emails, phone numbers)
  is replaced wherever it matches; text that already is a placeholder is never touched again.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "DETECTORS",
    "EXTRA_DETECTORS",
    "PLACEHOLDER_RE",
    "SENSITIVE_HEADERS",
    "SENSITIVE_PARAMS",
    "Detector",
    "Redactor",
    "collapse",
    "detectors_by_kind",
    "is_sensitive_header",
    "key_from_text",
]

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-auth-token",
        "x-access-token",
        "x-amz-security-token",
        "x-csrf-token",
        "private-token",
    }
)
# Header names built from these words carry credentials even when not listed above (x-foo-api-key...).
_SENSITIVE_HEADER_RE = re.compile(r"(^|[-_])(api[-_]?key|secret|password|passwd|token|session)($|[-_])", re.I)

SENSITIVE_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "secret",
        "password",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)


@dataclass(frozen=True)
class Detector:
    """One kind of secret. The secret is the group `s` when the pattern has one (the value of
    `password=...`), else the whole match.

    Speed: Python's regex engine scans fast for a pattern that starts with a literal, so patterns start
    with their literal prefix and check the word boundary just after it (`sk-(?<![A-Za-z0-9_]sk-)`).
    `literals`: one of them is in every match, a substring test that skips the pattern for text that
    cannot hold one. A pattern with no literal prefix has an `anchor` (a fast pattern every match's line
    holds; searched in the lower-cased text when `fold`): only lines with an anchor hit are searched.
    """

    kind: str
    pattern: re.Pattern[str]
    literals: tuple[str, ...] = ()
    anchor: re.Pattern[str] | None = None
    fold: bool = False

    def finds(self, text: str) -> bool:
        return not self.literals or any(literal in text for literal in self.literals)


def _d(
    kind: str, pattern: str, *literals: str, flags: int = 0, anchor: str | None = None, fold: bool = False
) -> Detector:
    return Detector(kind, re.compile(pattern, flags), literals, re.compile(anchor) if anchor else None, fold)


def _word(prefix: str) -> str:
    """`prefix` not preceded by a word character, in a form that keeps the literal prefix first."""
    return f"{re.escape(prefix)}(?<![A-Za-z0-9_]{re.escape(prefix)})"


# Names that end a key whose value is a credential: GITHUB_TOKEN=, "password": , client_secret: ...
_KEY_WORDS = (
    r"(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
)

# Order matters: the most specific shapes first, so a Bearer JWT or a PEM block becomes one placeholder.
DETECTORS: tuple[Detector, ...] = (
    _d(
        "private-key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY( BLOCK)?-----.*?-----END [A-Z ]*PRIVATE KEY( BLOCK)?-----",
        "PRIVATE KEY",
        flags=re.S,
    ),
    _d("bearer", _word("Bearer ") + r"(?P<s>[A-Za-z0-9._~+/=-]{8,})", "Bearer "),
    _d("basic-auth", _word("Basic ") + r"(?P<s>[A-Za-z0-9+/]{8,}={0,2})", "Basic "),
    _d("url-credentials", r"://[^/\s:@\"'<>]{1,256}:(?P<s>[^/\s@\"'<>]{1,256})(?=@)", "://"),
    _d("anthropic-key", _word("sk-ant-") + r"[A-Za-z0-9_-]{16,}", "sk-ant-"),
    _d("openai-key", _word("sk-") + r"[A-Za-z0-9_-]{16,}", "sk-"),
    _d("github-token", _word("gh") + r"[pousr]_[A-Za-z0-9]{30,}", "gh"),
    _d("github-token", _word("github_pat_") + r"[A-Za-z0-9_]{22,}", "github_pat_"),
    _d("gitlab-token", _word("gl") + r"(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}", "gl"),
    _d(
        "aws-access-key",
        r"(?:AKIA|ASIA)(?<![A-Za-z0-9_]AKIA)(?<![A-Za-z0-9_]ASIA)[0-9A-Z]{16}\b",
        "AKIA",
        "ASIA",
    ),
    _d(
        "aws-secret-key",
        r"(?i)aws_?secret_?access_?key[\"']?\s*[=:]\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        anchor="secret",
        fold=True,
    ),
    _d("jwt", r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "eyJ"),
    _d("gcp-api-key", _word("AIza") + r"[0-9A-Za-z_-]{35}", "AIza"),
    _d("slack-token", _word("xox") + r"[abprse]-[A-Za-z0-9-]{10,}", "xox"),
    _d("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}", "hooks.slack.com"),
    _d("huggingface-token", _word("hf_") + r"[A-Za-z0-9]{30,}", "hf_"),
    _d(
        "stripe-key",
        r"(?:sk|rk)_(?<![A-Za-z0-9_]sk_)(?<![A-Za-z0-9_]rk_)(?:live|test)_[A-Za-z0-9]{20,}",
        "k_live_",
        "k_test_",
    ),
    _d(
        "assignment",
        rf"(?i)(?<![A-Za-z0-9]){_KEY_WORDS}[\"']?\s*[=:]\s*[\"']?(?!(?:null|none|true|false)\b)"
        r"(?P<s>[^\s\"'\\&,;<>(){}\[\]]{3,})",
        anchor=r"(?:pass(?:word|wd|phrase)?|secret|token|key|credentials?)[\"']?\s*[=:]",
        fold=True,
    ),
    _d(
        "email",
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b",
        "@",
        anchor=r"@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b",
    ),
    _d("phone", r"\+(?<![\w+]\+)[1-9]\d{0,2}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}(?!\w)", "+"),
    _d("phone", r"(?<![\w-])\(?\d{3}\)?[ .-]\d{3}-\d{4}(?![\w-])", "-", anchor=r"-\d{4}(?![\w-])"),
)

# Kinds only the strict policies use: noisy in logs, but personal data in some jurisdictions.
EXTRA_DETECTORS: tuple[Detector, ...] = (
    _d(
        "ip-address",
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])",
        ".",
        anchor=r"\d\.\d{1,3}\.\d",
    ),
)

# `REDACTED_<16 hex>` is the form of cassettes written before placeholders carried their kind.
PLACEHOLDER_RE = re.compile(r"REDACTED_(?:([a-z][a-z0-9-]*)_)?([0-9a-f]{16})")


def detectors_by_kind(kinds: Iterable[str]) -> tuple[Detector, ...]:
    wanted = set(kinds)
    return tuple(d for d in (*DETECTORS, *EXTRA_DETECTORS) if d.kind in wanted)


def collapse(text: str) -> str:
    """Every placeholder as `REDACTED_<kind>`: equal for any two secrets of one kind, whatever the key."""
    return PLACEHOLDER_RE.sub(lambda m: f"REDACTED_{m.group(1) or 'secret'}", text)


class Redactor:
    """Replaces secrets by keyed placeholders. One instance per key; cheap to call per exchange.

    `found(kind, secret, placeholder)` is called for every replacement (the packer keeps the originals
    to seal them and counts them for the audit); `keep(secret)` can spare a value (allow lists).
    """

    def __init__(
        self,
        key: bytes,
        detectors: tuple[Detector, ...] = DETECTORS,
        found: Callable[[str, str, str], None] | None = None,
    ) -> None:
        if not key:
            raise ValueError("the redaction key must not be empty")
        self._key = key
        self._detectors = detectors
        self._found = found

    def placeholder(self, secret: str, kind: str = "secret") -> str:
        """The stable stand-in for `secret`; a placeholder maps to itself so redaction is idempotent."""
        if PLACEHOLDER_RE.fullmatch(secret):
            return secret
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        token = f"REDACTED_{kind}_{digest[:16]}"
        if self._found:
            self._found(kind, secret, token)
        return token

    def text(self, text: str) -> str:
        """`text` with every detector's matches replaced; placeholders (already there, or made by an earlier
        detector) are never matched again, so `deploy:REDACTED_..@host` does not turn into an email."""
        for detector in self._detectors:
            if not detector.finds(text):
                continue
            if detector.anchor is None:
                text = self._outside_placeholders(text, detector)
                continue
            text = self._anchored(text, detector, detector.anchor)
        return text

    def _anchored(self, text: str, detector: Detector, anchor: re.Pattern[str]) -> str:
        """Apply `detector` to the lines holding an anchor hit, and only to those."""
        probe = text.lower() if detector.fold else text
        if len(probe) != len(text):  # lower-casing changed some lengths: offsets do not carry over
            return "\n".join(
                self._outside_placeholders(line, detector) if anchor.search(line.lower()) else line
                for line in text.split("\n")
            )
        out, done = [], 0
        for m in anchor.finditer(probe):
            if m.start() < done:
                continue  # same line as the previous hit
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
            out += [text[done:start], self._outside_placeholders(text[start:end], detector)]
            done = end
        out.append(text[done:])
        return "".join(out)

    def _outside_placeholders(self, text: str, detector: Detector) -> str:
        replace = functools.partial(self._replace, kind=detector.kind)
        if "REDACTED_" not in text:
            return detector.pattern.sub(replace, text)
        out, pos = [], 0
        for m in PLACEHOLDER_RE.finditer(text):
            out += [detector.pattern.sub(replace, text[pos : m.start()]), m.group(0)]
            pos = m.end()
        out.append(detector.pattern.sub(replace, text[pos:]))
        return "".join(out)

    def _replace(self, m: re.Match[str], kind: str) -> str:
        if "s" not in m.re.groupindex:
            return self.placeholder(m.group(0), kind)
        start, end = m.span("s")
        whole = m.group(0)
        secret = self.placeholder(m.group("s"), self.kind_of(m.group("s"), kind))
        return whole[: start - m.start()] + secret + whole[end - m.start() :]

    def kind_of(self, value: str, default: str) -> str:
        """The kind of a credential found by its context (`Bearer x`, `token=x`): its own shape's kind when
        it has one, so one secret gets one placeholder in a header, a body and a log alike."""
        for detector in self._detectors:
            if "s" not in detector.pattern.groupindex and detector.pattern.fullmatch(value):
                return detector.kind
        return default

    def header_value(self, name: str, value: str) -> str:
        if is_sensitive_header(name):
            scheme, sep, credentials = value.partition(" ")
            if name.lower() in {"authorization", "proxy-authorization"} and sep and credentials:
                kind = {"bearer": "bearer", "basic": "basic-auth"}.get(scheme.lower(), "credential")
                return f"{scheme} {self.placeholder(credentials, self.kind_of(credentials, kind))}"
            return self.placeholder(value, self.kind_of(value, "credential"))
        return self.text(value)

    def headers(self, fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, self.header_value(name, value)) for name, value in fields]

    def query(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (
                name,
                self.placeholder(value, self.kind_of(value, "credential"))
                if value and name.lower() in SENSITIVE_PARAMS
                else self.text(value),
            )
            for name, value in pairs
        ]


def is_sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or bool(_SENSITIVE_HEADER_RE.search(lowered))


def key_from_text(text: str) -> bytes:
    """The key given as an option: hex when it is 32+ hex digits, else the text itself; random when empty."""
    if not text:
        return secrets.token_bytes(32)
    try:
        return bytes.fromhex(text) if len(text) >= 32 else text.encode()
    except ValueError:
        return text.encode()
