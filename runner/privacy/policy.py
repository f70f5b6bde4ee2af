"""Named, versioned redaction policies: which detectors run and which keys are always or never secret.

Input: a policy name (recorded in the manifest's `privacy.redaction_policy`). Output: a `Policy`.
Rules: a published name never changes meaning; a new behaviour gets a new name (`default-v2`), so a pack
says exactly which rules masked it. The detectors themselves live in `proxy.detectors` (the proxy applies
the same ones to live traffic, so recorded and replayed requests still match).

`NAMES` and `check` answer whether a name is a policy without compiling a detector (`runner record` checks
its policy before its agent starts); the detectors (`proxy.redact`) are imported with the first `Policy`.

Also `known_detectors` (values found secret before the build, as detectors of their own) and the two
helpers for what has structure the detectors cannot see: `redact_argv` (a command line, where
`--password` and its value are two arguments) and `redact_env_values` (an environment, where a key the
policy denies, or a value shaped like a token whatever its name, loses its whole value).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from runner.errors import PrivacyError

if TYPE_CHECKING:
    from proxy.detectors import Detector
    from proxy.redact import Redactor

__all__ = [
    "DEFAULT_POLICY",
    "NAMES",
    "Policy",
    "check",
    "get",
    "known_detectors",
    "looks_like_token",
    "redact_argv",
    "redact_env_value",
    "redact_env_values",
]

DEFAULT_POLICY = "default-v1"


@dataclass(frozen=True)
class Policy:
    name: str
    detectors: tuple[Detector, ...]
    # Variables and keys whose values are kept as they are (never secrets, and replay needs them verbatim).
    allow_keys: frozenset[str]
    # Variables and keys whose whole value is a secret, whatever it looks like.
    deny_keys: re.Pattern[str]

    def masks_key(self, key: str) -> bool:
        return key not in self.allow_keys and bool(self.deny_keys.search(key))


_ALLOW = frozenset(
    {
        "PATH", "HOME", "PWD", "OLDPWD", "LANG", "LC_ALL", "TERM", "SHELL", "USER", "TZ", "PYTHONHASHSEED",
        "TOKENIZERS_PARALLELISM", "GIT_ASKPASS", "SSH_AUTH_SOCK", "max_tokens", "prompt_tokens",
    }
)  # fmt: skip
_DENY_WORDS = (
    r"password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|"
    r"authorization|auth|cookie|signature|dsn|connection[_-]?string|database[_-]?url"
)
# The name must end with the word: GITHUB_TOKEN and client_secret, not max_tokens, author or secret_name.
_DENY = re.compile(rf"(?i)(?:{_DENY_WORDS})$")
_STRICT_DENY = re.compile(rf"(?i)(?:{_DENY_WORDS}|key|cert|salt|webhook|url|session|session[_-]?id)$")

NAMES = ("default-v1", "strict-v1")  # the policies `get` knows


@functools.cache
def _policies() -> Mapping[str, Policy]:
    from proxy.detectors import DETECTORS, EXTRA_DETECTORS

    return {
        "default-v1": Policy("default-v1", DETECTORS, _ALLOW, _DENY),
        "strict-v1": Policy("strict-v1", DETECTORS + EXTRA_DETECTORS, _ALLOW - {"USER"}, _STRICT_DENY),
    }


def check(name: str) -> None:
    """PrivacyError unless `name` is a policy."""
    if name not in NAMES:
        raise PrivacyError(f"unknown redaction policy {name!r}; known: {', '.join(sorted(NAMES))}")


def get(name: str) -> Policy:
    check(name)
    return _policies()[name]


# A long option whose value is a credential (the value follows as `=VALUE` or as the next argument).
_SECRET_FLAG = re.compile(
    r"(?i)--?(?:[a-z0-9]+[-_])*(?:pass(?:word|wd|phrase)?|secret(?:[-_]?key)?|token|api[-_]?key|apikey"
    r"|access[-_]?key|private[-_]?key|credentials?)"
)
# Short flags that take a password, for the programs where they do (`-p` means port or path elsewhere);
# `_ATTACHED_P` programs also take it attached (`mysql -pSECRET`).
_SHORT_FLAGS: Mapping[str, str] = {"sshpass": "-p", "redis-cli": "-a"}
_ATTACHED_P = frozenset(
    {"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mariadb", "sshpass"}
)


def redact_argv(argv: Sequence[str], redactor: Redactor) -> list[str]:
    """`argv` with its secrets replaced: the value of a credential flag (`--api-key X`, `--password=X`,
    `sshpass -p X`, `mysql -pX`) whole, and every argument through the detectors (`sk-...`, URL
    credentials, JWTs) — arguments one by one, where `--password` and its value are two of them."""
    program = PurePosixPath(argv[0]).name if argv else ""
    out: list[str] = []
    value_next = False
    for arg in argv:
        if value_next and arg and not arg.startswith("--"):
            out.append(_whole(arg, redactor, "flag"))
            value_next = False
            continue
        value_next = False
        name, eq, value = arg.partition("=")
        if _SECRET_FLAG.fullmatch(name):
            value_next = not eq
            out.append(f"{name}={_whole(value, redactor, 'flag')}" if value else arg)
        elif _SHORT_FLAGS.get(program) == arg:
            value_next = True
            out.append(arg)
        elif program in _ATTACHED_P and arg.startswith("-p") and len(arg) > 2:
            out.append("-p" + _whole(arg[2:], redactor, "flag"))
        else:
            out.append(redactor.text(arg))
    return out


def redact_env_value(key: str, value: str, redactor: Redactor, policy: Policy) -> str:
    """One environment value: whole when the policy denies its key or it looks like a token (whatever its
    name, unless the policy allows the key), else through the detectors."""
    from proxy.redact import PLACEHOLDER_RE

    if not value or PLACEHOLDER_RE.fullmatch(value):
        return value
    if policy.masks_key(key) or (key not in policy.allow_keys and looks_like_token(value)):
        return _whole(value, redactor, "credential")
    return redactor.text(value)


def redact_env_values(
    env: Mapping[str, str], redactor: Redactor, policy: Policy | None = None
) -> dict[str, str]:
    """An environment with every secret-looking value replaced (see `redact_env_value`); the default
    policy's keys when `policy` is None."""
    rules = policy or get(DEFAULT_POLICY)
    return {k: redact_env_value(k, v, redactor, rules) for k, v in env.items()}


_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9+/=_.~-]{20,}")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # git commits and sha256 digests: ids, not secrets
_HEX = re.compile(r"[0-9a-fA-F]+")


def looks_like_token(value: str) -> bool:
    """A value that is one long random-looking token: 32+ hex digits (not a commit id or a digest), or
    20+ characters mixing upper case, lower case and digits with high entropy. Paths, versions, UUIDs
    and words are not."""
    if not _TOKEN_SHAPE.fullmatch(value) or _OBJECT_ID.fullmatch(value):
        return False
    if _HEX.fullmatch(value):
        return len(value) >= 32
    if not (re.search(r"[a-z]", value) and re.search(r"[A-Z]", value) and re.search(r"[0-9]", value)):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.5


def _whole(value: str, redactor: Redactor, kind: str) -> str:
    from proxy.redact import PLACEHOLDER_RE

    if not value or PLACEHOLDER_RE.fullmatch(value):
        return value
    return redactor.placeholder(value, redactor.kind_of(value, kind))


_MIN_KNOWN = 8  # shorter originals (a "yes" in an auth header) would blank out ordinary words


def known_detectors(known: Iterable[tuple[str, str]]) -> tuple[Detector, ...]:
    """Detectors for (kind, value) pairs already found secret before the build (the proxy saw them in an
    auth header): wherever else they appear (an innocently named variable, a log line), they get the same
    placeholder."""
    from proxy.detectors import Detector

    by_kind: dict[str, set[str]] = {}
    for kind, value in known:
        if len(value) >= _MIN_KNOWN:
            by_kind.setdefault(kind, set()).add(value)
    ordered = {kind: tuple(sorted(values, key=len, reverse=True)) for kind, values in sorted(by_kind.items())}
    return tuple(Detector(k, re.compile("|".join(map(re.escape, v))), literals=v) for k, v in ordered.items())
