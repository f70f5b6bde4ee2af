"""Which OCI registry, and how to log in to it: pack references, the plain-HTTP rule, credentials.

Inputs: a reference text (`127.0.0.1:5000/team/packs:nightly@sha256:...`), the environment, the docker
client config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) and its credential helpers.
Outputs: a `Reference`; the URL scheme for a host; `Credentials` or None.
Rules:
- A reference always names its registry host (with a `.` or a `:`, or `localhost`): nothing is ever
  sent to a default registry by accident. Digests are sha256 only.
- Plain HTTP only for loopback registries (127.0.0.0/8, ::1, localhost) unless the caller allows it.
- Credentials, first found wins: RUNNER_REGISTRY_USERNAME + RUNNER_REGISTRY_PASSWORD; the docker
  config's `credHelpers[host]`, then its `credsStore` (both via `docker-credential-NAME get`), then its
  inline `auths[host]`. Identity tokens are not supported. A password never appears in a repr, a
  message or a file this package writes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from runner.errors import ExitCode, RunnerError, UsageError

__all__ = [
    "Credentials",
    "Reference",
    "RegistryError",
    "RegistryUnavailable",
    "docker_config_path",
    "find_credentials",
    "is_loopback",
    "parse_reference",
    "scheme_for",
]

ENV_USERNAME = "RUNNER_REGISTRY_USERNAME"
ENV_PASSWORD = "RUNNER_REGISTRY_PASSWORD"
_HELPER_TIMEOUT = 30.0

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    r"(?P<host>localhost(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?"
    r"|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*:[0-9]+|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
    rf"/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_EXAMPLE = "127.0.0.1:5000/team/packs:nightly or registry.example.com/team/packs@sha256:<64 hex>"


class RegistryError(RunnerError):
    """A registry refused a request, wants credentials it did not get, or answered something unusable."""

    exit_code = ExitCode.BAD_INPUT


class RegistryUnavailable(RegistryError):
    """No registry answers at that address (refused, unresolvable, timed out)."""

    exit_code = ExitCode.ENVIRONMENT


@dataclass(frozen=True)
class Reference:
    """`host/repository[:tag][@sha256:...]`; with a digest the tag is informative only (docker's rule)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        return text + (f"@{self.digest}" if self.digest else "")

    @property
    def target(self) -> str:
        """What the manifests endpoint is asked for: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digest)


def parse_reference(text: str) -> Reference:
    m = _REFERENCE.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"not an OCI reference: {text!r}; expected e.g. {_EXAMPLE}")
    return Reference(m["host"], m["repository"], m["tag"], m["digest"])


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1, with or without a port."""
    name = _hostname(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def scheme_for(host: str, insecure_http: bool = False) -> Literal["http", "https"]:
    return "http" if insecure_http or is_loopback(host) else "https"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str  # where they were found, for messages: never the secret itself


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    folder = env.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def find_credentials(
    host: str,
    env: Mapping[str, str] | None = None,
    docker_config: Path | None = None,
    run: Runner = subprocess.run,
) -> Credentials | None:
    """The credentials for `host` (see the module rules for the order), or None when there are none."""
    env = os.environ if env is None else env
    user, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if user or password:
        if not (user and password):
            raise UsageError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        return Credentials(user, password, f"{ENV_USERNAME}/{ENV_PASSWORD}")
    path = docker_config or docker_config_path(env)
    config = _read_config(path)
    auths = {_server_key(k): v for k, v in _mapping(config.get("auths")).items()}
    helpers = _mapping(config.get("credHelpers"))
    for helper in (helpers.get(host), config.get("credsStore")):
        if isinstance(helper, str) and helper:
            found = _from_helper(helper, host, path, run)
            if found is not None:
                return found
    return _from_auth_entry(_mapping(auths.get(host)), host, path)


def _read_config(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the docker config {path}: {e.__class__.__name__}") from None
    return _mapping(data)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _server_key(key: str) -> str:
    """`https://registry.example.com/v1/` and `registry.example.com` name the same server."""
    return re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]


def _from_auth_entry(entry: Mapping[str, Any], host: str, path: Path) -> Credentials | None:
    user, password = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError(
                f"the `auth` entry for {host} in {path} is not base64 of user:password"
            ) from None
    if isinstance(user, str) and user and isinstance(password, str) and password:
        return Credentials(user, password, str(path))
    return None


def _from_helper(name: str, host: str, path: Path, run: Runner) -> Credentials | None:
    binary = f"docker-credential-{name}"
    try:
        proc = run([binary, "get"], input=host, capture_output=True, text=True, timeout=_HELPER_TIMEOUT)
    except FileNotFoundError:
        raise RegistryError(f"the credential helper {binary} named in {path} is not installed") from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"the credential helper {binary} did not answer for {host}") from None
    if proc.returncode != 0:
        if "not found" in (proc.stdout + proc.stderr).lower():
            return None
        first = ((proc.stderr or proc.stdout).strip().splitlines() or ["no message"])[0][:200]
        raise RegistryError(f"the credential helper {binary} failed for {host}: {first}")
    try:
        answer = _mapping(json.loads(proc.stdout))
    except ValueError:
        raise RegistryError(f"the credential helper {binary} answered something that is not JSON") from None
    user, secret = answer.get("Username"), answer.get("Secret")
    if not (isinstance(user, str) and user and isinstance(secret, str) and secret) or user == "<token>":
        return None  # "<token>": an identity token, which only docker's own OAuth flow can use
    return Credentials(user, secret, binary)
