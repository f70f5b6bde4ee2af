"""Secrets out, stable placeholders in: the redaction policy of the cassette proxy.

Input: text (URLs, bodies), header lists and query pairs. Output: the same with every secret replaced
by `REDACTED_<16 hex>`, where the hex is an HMAC-SHA256 of the secret under a per-pack key. The same
secret always gives the same placeholder under the same key, so a replayed request carrying the live
secret matches the recorded one carrying its placeholder, while the secret itself never reaches disk.

Rules:
- headers named in SENSITIVE_HEADERS (or whose name looks like a credential) lose their whole value;
  an `Authorization: <scheme> <credentials>` keeps its scheme so the cassette stays readable;
- query parameters named in SENSITIVE_PARAMS lose their value;
- anything matching TOKEN_PATTERNS in any text (API keys, GitHub tokens, AWS key ids, JWTs, Bearer
  credentials) is replaced wherever it appears.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

__all__ = [
    "PLACEHOLDER_RE",
    "SENSITIVE_HEADERS",
    "SENSITIVE_PARAMS",
    "TOKEN_PATTERNS",
    "Redactor",
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

# Each pattern with the literals one of which any match contains: a substring test (fast, in C) skips
# the regular expression for the usual text that holds no token at all.
TOKEN_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # Bearer first so the whole credential, whatever its shape, becomes one placeholder.
    (("Bearer ",), re.compile(r"(?<=\bBearer )[A-Za-z0-9._~+/=-]{8,}")),
    (("sk-",), re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),  # OpenAI, Anthropic (sk-ant-...), compatible hosts
    (("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),  # GitHub tokens
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),  # AWS access key ids
    (("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),  # JWT
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),  # Google API keys
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),  # Slack
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}")),  # Hugging Face
    (("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),  # GitLab
)

PLACEHOLDER_RE = re.compile(r"REDACTED_[0-9a-f]{16}")


class Redactor:
    """Replaces secrets by keyed placeholders. One instance per pack key; cheap to call per exchange."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the redaction key must not be empty")
        self._key = key

    def placeholder(self, secret: str) -> str:
        """The stable stand-in for `secret`; a placeholder maps to itself so redaction is idempotent."""
        if PLACEHOLDER_RE.fullmatch(secret):
            return secret
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        return f"REDACTED_{digest[:16]}"

    def text(self, text: str) -> str:
        """`text` with every token pattern replaced."""
        for literals, pattern in TOKEN_PATTERNS:
            if any(literal in text for literal in literals):
                text = pattern.sub(lambda m: self.placeholder(m.group(0)), text)
        return text

    def header_value(self, name: str, value: str) -> str:
        if is_sensitive_header(name):
            scheme, sep, credentials = value.partition(" ")
            if name.lower() in {"authorization", "proxy-authorization"} and sep and credentials:
                return f"{scheme} {self.placeholder(credentials)}"
            return self.placeholder(value)
        return self.text(value)

    def headers(self, fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, self.header_value(name, value)) for name, value in fields]

    def query(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (
                name,
                self.placeholder(value) if value and name.lower() in SENSITIVE_PARAMS else self.text(value),
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
