"""References, the plain-HTTP rule and the credential lookup (env, docker config, credential helpers)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runner.errors import UsageError
from runner.store.ociregistry import (
    Credentials,
    Reference,
    RegistryError,
    find_credentials,
    is_loopback,
    parse_reference,
    scheme_for,
)

DIGEST = "sha256:" + "ab" * 32
HOST = "registry.example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/team/packs:nightly", Reference("127.0.0.1:5000", "team/packs", "nightly")),
        (f"{HOST}/packs@{DIGEST}", Reference(HOST, "packs", None, DIGEST)),
        (f"localhost/a/b:v1.2@{DIGEST}", Reference("localhost", "a/b", "v1.2", DIGEST)),
        ("[::1]:5000/x/y-z_w", Reference("[::1]:5000", "x/y-z_w")),
        ("ci-registry:443/team.packs/p", Reference("ci-registry:443", "team.packs/p")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert str(ref) == text
    assert ref.target == (expected.digest or expected.tag or "latest")


@pytest.mark.parametrize(
    "text",
    [
        "team/packs:nightly",  # no registry host: never a default registry by accident
        "packs",
        f"{HOST}/Team/packs",  # repositories are lower case
        f"{HOST}/packs@sha256:abc",
        f"{HOST}/packs@sha512:" + "ab" * 64,
        f"{HOST}/packs:-bad",
        f"https://{HOST}/packs",
    ],
)
def test_parse_reference_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="not an OCI reference"):
        parse_reference(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("LOCALHOST", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("10.0.0.1:5000", False),
        ("128.0.0.1", False),
        ("localhost.example.com", False),
        (HOST, False),
        ("[2001:db8::1]:443", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert scheme_for(host) == ("http" if loopback else "https")


def test_plain_http_elsewhere_needs_the_flag() -> None:
    assert scheme_for(HOST, insecure_http=True) == "http"


def _config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_env_wins(tmp_path: Path) -> None:
    config = _config(tmp_path, {"auths": {HOST: {"auth": _auth("file", "pw")}}})
    env = {"RUNNER_REGISTRY_USERNAME": "ci", "RUNNER_REGISTRY_PASSWORD": "token"}
    found = find_credentials(HOST, env=env, docker_config=config)
    assert found == Credentials("ci", "token", "RUNNER_REGISTRY_USERNAME/RUNNER_REGISTRY_PASSWORD")


def test_env_needs_both(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="set both"):
        find_credentials(HOST, env={"RUNNER_REGISTRY_USERNAME": "ci"}, docker_config=tmp_path / "none")


def test_inline_auths(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "auths": {
                f"https://{HOST}/v1/": {"auth": _auth("alice", "pa:ss")},
                "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            }
        },
    )
    assert find_credentials(HOST, env={}, docker_config=config) == Credentials("alice", "pa:ss", str(config))
    assert find_credentials("127.0.0.1:5000", env={}, docker_config=config) == Credentials(
        "bob", "pw", str(config)
    )
    assert find_credentials("other.example.com", env={}, docker_config=config) is None


def test_docker_config_env_and_missing_file(tmp_path: Path) -> None:
    _config(tmp_path, {"auths": {HOST: {"auth": _auth("alice", "pw")}}})
    found = find_credentials(HOST, env={"DOCKER_CONFIG": str(tmp_path)})
    assert found is not None and found.username == "alice"
    assert find_credentials(HOST, env={"DOCKER_CONFIG": str(tmp_path / "absent")}) is None


def test_bad_inline_auth(tmp_path: Path) -> None:
    config = _config(tmp_path, {"auths": {HOST: {"auth": "%%%"}}})
    with pytest.raises(UsageError, match="not base64"):
        find_credentials(HOST, env={}, docker_config=config)


def test_password_never_in_repr() -> None:
    assert "hunter2" not in repr(Credentials("alice", "hunter2", "env"))


class FakeHelpers:
    """Stands in for subprocess.run of docker-credential-NAME; answers from a table of (name, host)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, str]]) -> None:
        self.answers, self.calls = answers, list[tuple[str, str]]()

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        name, host = argv[0].removeprefix("docker-credential-"), kw["input"]
        self.calls.append((name, host))
        if (name, host) not in self.answers:
            raise FileNotFoundError(argv[0])
        code, out = self.answers[name, host]
        return subprocess.CompletedProcess(argv, code, out, "")


def _secret(user: str, secret: str) -> str:
    return json.dumps({"ServerURL": HOST, "Username": user, "Secret": secret})


def test_cred_helper_for_the_host_first(tmp_path: Path) -> None:
    config = _config(tmp_path, {"credHelpers": {HOST: "ecr"}, "credsStore": "pass"})
    run = FakeHelpers({("ecr", HOST): (0, _secret("AWS", "tok")), ("pass", HOST): (0, _secret("x", "y"))})
    assert find_credentials(HOST, env={}, docker_config=config, run=run) == Credentials(
        "AWS", "tok", "docker-credential-ecr"
    )
    assert run.calls == [("ecr", HOST)]


def test_creds_store_then_inline(tmp_path: Path) -> None:
    config = _config(tmp_path, {"credsStore": "pass", "auths": {HOST: {"auth": _auth("file", "pw")}}})
    run = FakeHelpers({("pass", HOST): (0, _secret("store", "s"))})
    assert find_credentials(HOST, env={}, docker_config=config, run=run) == Credentials(
        "store", "s", "docker-credential-pass"
    )
    not_found = FakeHelpers({("pass", HOST): (1, "credentials not found in native keychain")})
    found = find_credentials(HOST, env={}, docker_config=config, run=not_found)
    assert found is not None and found.username == "file"


def test_identity_tokens_are_not_used(tmp_path: Path) -> None:
    config = _config(tmp_path, {"credsStore": "desktop"})
    run = FakeHelpers({("desktop", HOST): (0, _secret("<token>", "refresh"))})
    assert find_credentials(HOST, env={}, docker_config=config, run=run) is None


def test_helper_missing_or_failing(tmp_path: Path) -> None:
    config = _config(tmp_path, {"credsStore": "nope"})
    with pytest.raises(RegistryError, match=r"docker-credential-nope .* is not installed"):
        find_credentials(HOST, env={}, docker_config=config, run=FakeHelpers({}))
    broken = FakeHelpers({("nope", HOST): (1, "gpg: decryption failed")})
    with pytest.raises(RegistryError, match=r"failed for registry\.example\.com: gpg: decryption failed"):
        find_credentials(HOST, env={}, docker_config=config, run=broken)


def test_a_real_helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(
        '#!/bin/sh\nread host\n[ "$1" = get ] && [ "$host" = registry.example.com ] || exit 1\n'
        'echo \'{"ServerURL":"registry.example.com","Username":"u","Secret":"s"}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    config = _config(tmp_path, {"credsStore": "fake"})
    assert find_credentials(HOST, env={}, docker_config=config) == Credentials(
        "u", "s", "docker-credential-fake"
    )
