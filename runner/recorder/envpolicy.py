"""Which of the agent's environment variables replay gets verbatim, as a placeholder, or not at all.

Inputs: the agent's environment (before the recording proxy's variables are added), the names the runner
itself sets, and the user's `--env-allow` / `--env-secret` names. Output: an `EnvPolicy`: a decision with
its reason per variable (`runner.pack.model.EnvDecision`) and the values kept verbatim.
Rules, first match wins:
- runner-internal: the recording proxy's variables (proxy URL, CA trust) and RUNNER_*: dropped (replay
  sets its own); the user's choices do not change this.
- too-large: a value over 64 KiB: dropped.
- user-secret (`--env-secret`), then user-allow (`--env-allow`).
- allowlisted: variables that mean the same on any machine (snapshot.REPLAYED_ENV): verbatim.
- host-specific: paths and sessions of this machine (PATH, HOME, SSH_AUTH_SOCK, ...): dropped.
- name-rule:<rule>: a name built from a credential word (API_KEY, TOKEN, SECRET, PASSWORD, ...): placeholder.
- detector:<kind>: a value a secret detector matches (`secret_kind`): placeholder.
- Everything else: verbatim (reason `not-secret`).
Placeholders keep the secret's shape only (runner.pack.agentenv.shape_of); the value is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from proxy.redact import Redactor
from runner.pack.agentenv import shape_of
from runner.pack.model import EnvDecision
from runner.pack.snapshot import ENV_ALLOWLIST, REPLAYED_ENV

__all__ = ["HOST_SPECIFIC", "MAX_VALUE", "NAME_RULES", "EnvPolicy", "decide", "secret_kind"]

MAX_VALUE = 64 * 1024
HOST_SPECIFIC = frozenset(
    {
        "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "_", "USER", "LOGNAME", "SHELL", "MAIL", "HOSTNAME",
        "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
        "CONDA_SHLVL", "CONDA_EXE", "CONDA_PYTHON_EXE", "PS1", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
        "LD_LIBRARY_PATH", "LD_PRELOAD", "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "SSH_AUTH_SOCK",
        "SSH_AGENT_PID", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "GPG_AGENT_INFO", "XDG_RUNTIME_DIR",
        "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "XDG_DATA_DIRS", "XDG_CONFIG_DIRS",
        "DBUS_SESSION_BUS_ADDRESS", "MOTD_SHOWN", "LS_COLORS", "TERM_SESSION_ID", "TMUX", "TMUX_PANE",
        "STY", "WINDOWID", "DOCKER_HOST", "KUBECONFIG", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER",
        "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES",
    }
)  # fmt: skip
# The proxy's own names (runner.cassettes.tls.client_trust_env) and those a user's own proxy would use:
# the recording proxy replaced them for the agent, and replay's proxy sets them again.
_RUNNER_NAMES = frozenset(
    {
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
        "PIP_CERT", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE", "DENO_CERT", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY",
        "NO_PROXY", "https_proxy", "http_proxy", "all_proxy", "no_proxy",
    }
)  # fmt: skip
# Rules on the words of a name (split at `_`, `-` and `.`, upper-cased); TOKENIZERS_PARALLELISM or
# GIT_AUTHOR_NAME do not match, OPENAI_API_KEY, GH_TOKEN, DB_PASSWORD and SENTRY_DSN do.
NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (rule, re.compile(pattern))
    for rule, pattern in (
        ("key", r"(API|ACCESS|SECRET|PRIVATE|LICENSE|SIGNING|ENCRYPTION|MASTER)?KEYS?"),
        ("token", r"\w*TOKENS?"),
        ("secret", r"\w*SECRETS?"),
        ("password", r"\w*(PASSWORD|PASSWD|PASSPHRASE)S?|PASS|PW"),
        ("credential", r"\w*CREDENTIALS?|CREDS"),
        ("auth", r"\w*AUTH|AUTHORIZATION"),
        ("cookie", r"COOKIES?"),
        ("dsn", r"DSN"),
    )
)


@dataclass(frozen=True)
class EnvPolicy:
    decisions: dict[str, EnvDecision]  # every variable of the agent's environment
    verbatim: dict[str, str]  # the values of those replayed verbatim

    @property
    def snapshot_allow(self) -> frozenset[str]:
        """The names whose value the environment snapshot keeps (the others become keyed hashes)."""
        hidden = {k for k, d in self.decisions.items() if d.action == "placeholder"}
        return frozenset((ENV_ALLOWLIST | set(self.verbatim)) - hidden)


def secret_kind(value: str) -> str | None:
    """The kind of secret a detector finds in `value` (`openai-key`, `jwt`, ...), or None.

    The one place the recorder asks whether a value is a secret; the privacy wing's detectors decide."""
    kinds: list[str] = []
    Redactor(b"env-policy", found=lambda kind, _secret, _token: kinds.append(kind)).text(value)
    return kinds[0] if kinds else None


def _name_rule(name: str) -> str | None:
    words = [w for w in re.split(r"[_.-]+", name.upper()) if w]
    for rule, pattern in NAME_RULES:
        if any(pattern.fullmatch(word) for word in words):
            return rule
    return None


def _decide(name: str, value: str, runner_names: Collection[str], allow: Collection[str],
            secret: Collection[str]) -> EnvDecision:  # fmt: skip
    if name in runner_names or name in _RUNNER_NAMES or name.startswith("RUNNER_"):
        return EnvDecision("dropped", "runner-internal")
    if len(value) > MAX_VALUE:  # before any rule: a shape records the length, which the schema bounds
        return EnvDecision("dropped", "too-large")
    if name in secret:
        return EnvDecision("placeholder", "user-secret", shape_of(value))
    if name in allow:
        return EnvDecision("verbatim", "user-allow")
    if name in REPLAYED_ENV:
        return EnvDecision("verbatim", "allowlisted")
    if name in HOST_SPECIFIC:
        return EnvDecision("dropped", "host-specific")
    if rule := _name_rule(name):
        return EnvDecision("placeholder", f"name-rule:{rule}", shape_of(value))
    if kind := secret_kind(value):
        return EnvDecision("placeholder", f"detector:{kind}", shape_of(value))
    return EnvDecision("verbatim", "not-secret")


def decide(
    environ: Mapping[str, str],
    *,
    runner_names: Collection[str] = (),
    allow: Collection[str] = (),
    secret: Collection[str] = (),
) -> EnvPolicy:
    """Decide every variable of `environ` (see the module docstring)."""
    decisions = {
        name: _decide(name, value, runner_names, allow, secret) for name, value in sorted(environ.items())
    }
    verbatim = {name: environ[name] for name, d in decisions.items() if d.action == "verbatim"}
    return EnvPolicy(decisions, verbatim)
