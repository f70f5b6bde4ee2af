"""Named, versioned redaction policies: which detectors run and which keys are always or never secret.

Input: a policy name (recorded in the manifest's `privacy.redaction_policy`). Output: a `Policy`.
Rules: a published name never changes meaning; a new behaviour gets a new name (`default-v2`), so a pack
says exactly which rules masked it. The detectors themselves live in `proxy.redact` (the proxy applies
the same ones to live traffic, so recorded and replayed requests still match).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.redact import DETECTORS, EXTRA_DETECTORS, Detector
from runner.errors import PrivacyError

__all__ = ["DEFAULT_POLICY", "POLICIES", "Policy", "get"]

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

POLICIES: Mapping[str, Policy] = {
    "default-v1": Policy("default-v1", DETECTORS, _ALLOW, _DENY),
    "strict-v1": Policy("strict-v1", DETECTORS + EXTRA_DETECTORS, _ALLOW - {"USER"}, _STRICT_DENY),
}


def get(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise PrivacyError(
            f"unknown redaction policy {name!r}; known: {', '.join(sorted(POLICIES))}"
        ) from None
