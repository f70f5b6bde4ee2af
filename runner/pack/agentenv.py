"""The recorded agent's environment at replay: verbatim values, and stand-ins of the same shape for secrets.

Inputs: a secret's value (at record time) or a manifest (at replay). Outputs: `shape_of(value)`, the
`SecretShape` kept instead of a secret (a known vendor prefix, the length, the character set); `placeholder
(shape)`, a stand-in made from it; `replay_env(manifest)`, the variables the re-run agent gets.
Rules: a shape never holds any part of the value but a vendor prefix from `PREFIXES` (`sk-`, `ghp_`: the
same for every key of that vendor), so an SDK that checks a key's form still starts while the cassette
answers its requests. Placeholders are deterministic: the same shape always gives the same stand-in.
"""

from __future__ import annotations

import string

from runner.pack.model import Charset, Manifest, SecretShape

__all__ = ["PREFIXES", "placeholder", "replay_env", "shape_of"]

# Vendor prefixes, longest first so `sk-ant-` wins over `sk-`.
PREFIXES = tuple(
    sorted(
        (
            "sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-or-v1-", "sk-", "sk_live_", "sk_test_",
            "rk_live_", "rk_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "hf_",
            "xoxb-", "xoxp-", "xoxa-", "AKIA", "ASIA", "AIza", "gsk_", "pplx-", "r8_", "nvapi-", "csk-",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
_CHARSETS: tuple[tuple[Charset, frozenset[str]], ...] = (
    ("digits", frozenset(string.digits)),
    ("hex", frozenset(string.digits + "abcdef")),
    ("alnum", frozenset(string.ascii_letters + string.digits)),
    ("base64url", frozenset(string.ascii_letters + string.digits + "-_")),
    ("base64", frozenset(string.ascii_letters + string.digits + "+/=")),
)
_FILL: dict[Charset, str] = {
    "digits": "0123456789",
    "hex": "0123456789abcdef",
    "alnum": "REPLAYplaceholder0123456789",
    "base64url": "REPLAY-placeholder_0123456789",
    "base64": "REPLAYplaceholder0123456789",
    "printable": "REPLAY-placeholder-0123456789",
}


def shape_of(value: str) -> SecretShape:
    """The shape of a secret: its vendor prefix (if known), its length and the characters after the prefix."""
    prefix = next((p for p in PREFIXES if value.startswith(p) and len(value) > len(p)), "")
    rest = set(value[len(prefix) :])
    charset: Charset = next((name for name, chars in _CHARSETS if rest <= chars), "printable")
    return SecretShape(prefix=prefix, length=len(value), charset=charset)


def placeholder(shape: SecretShape) -> str:
    """A stand-in of `shape`: its prefix, then characters of its set up to its length."""
    fill = _FILL[shape.charset]
    body = (fill * (shape.length // len(fill) + 1))[: max(shape.length - len(shape.prefix), 0)]
    return (shape.prefix + body)[: shape.length]


def replay_env(manifest: Manifest) -> dict[str, str]:
    """The re-run agent's environment: `agent.command.env` (the values kept verbatim) and a placeholder for
    every variable recorded as one (`environment.variables`). Dropped variables (host paths, the recording
    proxy's own) are absent: the replay image and its proxy set their own."""
    command = manifest.agent.command
    env = dict(command.env) if command is not None else {}
    for name, decision in sorted(manifest.environment.variables.items()):
        if decision.action == "placeholder" and decision.shape is not None:
            env[name] = placeholder(decision.shape)
    return env
