"""OCI sharing without a registry: the cache of resolve_pack, refusals before any request, auth challenges.

Nothing here reaches a registry: addresses are free ports on 127.0.0.1 where nothing listens.
tests/integration/test_oci_registry.py does push and pull for real."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import get_args

import pytest
import requests

from runner.errors import PackError, UsageError
from runner.replay.outcome import Verdict
from runner.store import oci
from runner.store.ociregistry import Credentials, RegistryError, RegistryUnavailable, parse_reference
from tests.packfactory import make_pack

DIGEST = "sha256:" + "cd" * 32


def _dead_host() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_plain_paths_are_unchanged(cache: Path) -> None:
    assert oci.resolve_pack("packs/session.tar.zst", cache) == Path("packs/session.tar.zst")
    assert not cache.exists()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert oci.default_cache_dir() == tmp_path / "runner" / "oci"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert oci.default_cache_dir() == tmp_path / "home" / ".cache" / "runner" / "oci"


def test_a_cached_digest_needs_no_registry(cache: Path) -> None:
    cached = cache / "packs" / "sha256" / f"{DIGEST.removeprefix('sha256:')}.tar.zst"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"pulled and verified before")
    assert oci.resolve_pack(f"oci://{_dead_host()}/team/packs@{DIGEST}", cache) == cached


def test_a_down_registry_fails_at_once(cache: Path) -> None:
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=r"cannot reach the registry .* is it running") as e:
        oci.resolve_pack(f"oci://{_dead_host()}/team/packs@{DIGEST}", cache)
    assert time.monotonic() - started < 5  # oras' own retries (sleeps of up to 83 s) are off
    assert e.value.exit_code == 3


def test_a_tag_never_resolved_needs_the_registry(cache: Path) -> None:
    with pytest.raises(RegistryUnavailable, match="never resolved here"):
        oci.resolve_pack(f"oci://{_dead_host()}/team/packs:nightly", cache)


def test_a_tag_resolved_before_uses_its_digest_with_a_warning(cache: Path) -> None:
    host = _dead_host()
    ref = parse_reference(f"{host}/team/packs:nightly")
    record = oci._tag_file(cache, ref)
    record.parent.mkdir(parents=True)
    record.write_text(
        json.dumps({"reference": str(ref), "digest": DIGEST, "resolved_at": "2026-11-20T10:00:00Z"})
    )
    cached = cache / "packs" / "sha256" / f"{DIGEST.removeprefix('sha256:')}.tar.zst"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"pack")
    said: list[str] = []
    assert oci.resolve_pack(f"oci://{ref}", cache, warn=said.append) == cached
    assert len(said) == 1
    assert f"{ref}@{DIGEST}" in said[0] and "2026-11-20T10:00:00Z" in said[0] and "cannot reach" in said[0]
    with pytest.warns(UserWarning, match="what the tag named on"):
        oci.resolve_pack(f"oci://{ref}", cache)


def test_push_refuses_an_invalid_pack_before_any_request(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(b"not a pack")
    with pytest.raises(PackError):
        oci.push(bad, f"{_dead_host()}/team/packs:x")


def test_push_refuses_a_digest(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="push to a tag"):
        oci.push(make_pack(tmp_path), f"{_dead_host()}/team/packs@{DIGEST}")


def test_verdicts_are_the_replay_verdicts() -> None:
    assert set(get_args(oci.Verdict)) == {v.value for v in Verdict}


def _manifest(**fields: object) -> bytes:
    doc = {
        "schemaVersion": 2,
        "artifactType": oci.ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST, "size": 2},
        "layers": [{"mediaType": oci.PACK_MEDIA_TYPE, "digest": DIGEST, "size": 10}],
        "annotations": {oci.ANNOTATIONS["root"]: "ab" * 32},
    }
    return json.dumps(doc | fields).encode()


def test_pack_layer_of_a_runner_manifest() -> None:
    ref = parse_reference(f"127.0.0.1:5000/p@{DIGEST}")
    layer, root = oci._pack_layer(ref, _manifest())
    assert layer["digest"] == DIGEST and root == "ab" * 32


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not an OCI image manifest"),
        (_manifest(artifactType="application/vnd.oci.image.config.v1+json"), "not a runner pack"),
        (_manifest(layers=[]), "not a runner pack"),
        (_manifest(layers=[{"mediaType": oci.PACK_MEDIA_TYPE, "digest": "md5:x", "size": 1}]), "not usable"),
        (_manifest(layers=[{"mediaType": oci.PACK_MEDIA_TYPE, "digest": DIGEST, "size": -1}]), "not usable"),
    ],
)
def test_pack_layer_refuses(body: bytes, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem):
        oci._pack_layer(parse_reference(f"127.0.0.1:5000/p@{DIGEST}"), body)


def _challenge(header: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 401
    response.headers["Www-Authenticate"] = header
    return response


def test_basic_challenge_answered_only_with_credentials() -> None:
    auth = oci._Auth()
    assert auth.authenticate_request(_challenge('Basic realm="r"'), {"Accept": "x"}) == (
        {"Accept": "x"},
        False,
    )
    auth.set_basic_auth("alice", "pw")
    headers, retry = auth.authenticate_request(_challenge('Basic realm="r"'), {})
    assert retry and headers["Authorization"] == "Basic YWxpY2U6cHc="


def test_credentials_of_the_client_come_from_runner_only(tmp_path: Path) -> None:
    client = oci._Client(parse_reference("127.0.0.1:5000/p:t"), False, Credentials("u", "p", "test"))
    assert client.scheme == "http" and client.registry.auth._basic_auth == "dTpw"
    client.registry.auth.load_configs(client.container)  # oras' docker-config reading: a no-op here
    assert client.registry.auth._basic_auth == "dTpw"
    remote = oci._Client(parse_reference("registry.example.com/p:t"), False, None)
    assert remote.scheme == "https"
