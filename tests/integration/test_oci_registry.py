"""Packs through a real OCI registry: `docker-registry` on 127.0.0.1, open and behind htpasswd.

Push, pull by digest, chunked uploads, `oci://` resolution from the cache with the registry stopped, a blob
altered in the registry's storage refused, and credentials missing or wrong refused in one line."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from packs.build import build
from runner.cli import app
from runner.pack import build as pack_build
from runner.pack import summary
from runner.store import oci
from runner.store.ociregistry import RegistryUnavailable
from tests.helpers.registry import Registry, serve
from tests.integration.test_replay import ROOT, runner
from tests.packfactory import command, make_pack

pytestmark = pytest.mark.docker

USER, PASSWORD = "alice", "s3cret-pw"


def _bcrypt(password: str) -> str:
    os.environ.setdefault("PASSLIB_BUILTIN_BCRYPT", "enabled")  # passlib's own bcrypt; no C backend needed
    with warnings.catch_warnings():  # passlib imports the deprecated crypt module
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import bcrypt
    return str(bcrypt.using(rounds=4).hash(password))


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serve(tmp_path_factory.mktemp("open-registry")) as registry:
        yield registry


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("locked-registry")
    (root / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
    with serve(root, root / "htpasswd") as registry:
        yield registry


@pytest.fixture(autouse=True)
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials but the ones a test gives: an empty docker config, no RUNNER_REGISTRY_* variables."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("RUNNER_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("RUNNER_REGISTRY_PASSWORD", raising=False)
    return folder


def _pack(tmp_path: Path, text: str, signed: bool = False) -> Path:
    pack = make_pack(tmp_path, steps=[command("c1", ["echo", text], stdout=f"{text}\n".encode())])
    if signed:
        pack_build.resign(
            pack, lambda m: json.dumps({"root": m.integrity.root if m.integrity else ""}).encode()
        )
    return pack


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_push_then_pull_by_digest(open_registry: Registry, tmp_path: Path) -> None:
    pack = _pack(tmp_path, "shared", signed=True)
    code, out = _cli("push", str(pack), f"{open_registry.host}/team/packs:v1", "--verdict", "reproduced")
    assert code == 0, out
    pushed = out.strip()
    assert pushed.startswith(f"{open_registry.host}/team/packs:v1@sha256:")
    digest = pushed.rsplit("@", 1)[1]

    manifest = requests.get(
        f"http://{open_registry.host}/v2/team/packs/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    assert manifest["artifactType"] == oci.ARTIFACT_TYPE
    root = summary.inspect(pack).manifest.integrity
    assert root is not None
    assert manifest["annotations"][oci.ANNOTATIONS["root"]] == root.root
    assert manifest["annotations"][oci.ANNOTATIONS["session"]] == "a017c2d6-91a3-4d9c-8d2f-40e2b8cfa0ee"
    assert manifest["annotations"][oci.ANNOTATIONS["agent"]] == "repo-debugger"
    assert manifest["annotations"][oci.ANNOTATIONS["verdict"]] == "reproduced"
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds == [oci.PACK_MEDIA_TYPE, oci.SIGNATURE_MEDIA_TYPE, oci.AUDIT_MEDIA_TYPE]

    out_dir = tmp_path / "pulled"
    code, out = _cli("pull", f"{open_registry.host}/team/packs@{digest}", "--out", str(out_dir / "p.tar.zst"))
    assert code == 0, out
    assert (out_dir / "p.tar.zst").read_bytes() == pack.read_bytes()
    assert os.listdir(out_dir) == ["p.tar.zst"]  # no temp file left behind
    # By tag too: the same digest comes back.
    pulled = oci.pull(f"{open_registry.host}/team/packs:v1", tmp_path / "by-tag.tar.zst")
    assert pulled.reference.digest == digest and pulled.root == root.root


def test_chunked_upload(open_registry: Registry, tmp_path: Path) -> None:
    pack = _pack(tmp_path, os.urandom(20_000).hex())  # incompressible: several chunks
    pushed = oci.push(pack, f"{open_registry.host}/team/chunked:v1", chunk_size=4096)
    assert pack.stat().st_size > 4096
    pulled = oci.pull(pushed.reference, tmp_path / "back.tar.zst")
    assert pulled.path.read_bytes() == pack.read_bytes()


def test_a_tampered_blob_is_refused(open_registry: Registry, tmp_path: Path) -> None:
    pack = _pack(tmp_path, "to be tampered with")
    pushed = oci.push(pack, f"{open_registry.host}/team/tampered:v1")
    blob_hex = hashlib.sha256(pack.read_bytes()).hexdigest()
    blob = open_registry.storage / f"docker/registry/v2/blobs/sha256/{blob_hex[:2]}/{blob_hex}/data"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))

    out = tmp_path / "out" / "p.tar.zst"
    code, output = _cli("pull", str(pushed.reference), "--out", str(out))
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1
    assert "altered in the registry; refused" in output
    assert not out.exists() and os.listdir(out.parent) == []


def test_resolve_from_the_cache_with_the_registry_stopped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pack = _pack(tmp_path, "cached")
    root = tmp_path / "registry"
    root.mkdir()
    with serve(root) as registry:
        pushed = oci.push(pack, f"{registry.host}/team/cached:nightly")
        by_digest = f"oci://{pushed.reference}"
        path = oci.resolve_pack(by_digest, cache)
        assert path.read_bytes() == pack.read_bytes()
        assert oci.resolve_pack(f"oci://{registry.host}/team/cached:nightly", cache) == path
        registry.stop()
        assert oci.resolve_pack(by_digest, cache) == path
        said: list[str] = []
        assert oci.resolve_pack(f"oci://{registry.host}/team/cached:nightly", cache, warn=said.append) == path
        assert len(said) == 1 and "cannot reach" in said[0] and pushed.reference.digest in said[0]
        with pytest.raises(RegistryUnavailable, match="never resolved here"):
            oci.resolve_pack(f"oci://{registry.host}/team/cached:other", cache)
        code, output = _cli("pull", str(pushed.reference), "--out", str(tmp_path / "x.tar.zst"))
        assert code == 3 and "cannot reach the registry" in output


def test_credentials_from_env_and_docker_config(
    locked_registry: Registry, tmp_path: Path, no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = _pack(tmp_path, "locked")
    monkeypatch.setenv("RUNNER_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("RUNNER_REGISTRY_PASSWORD", PASSWORD)
    code, out = _cli("push", str(pack), f"{locked_registry.host}/team/locked:v1")
    assert code == 0, out
    reference = out.strip()
    monkeypatch.delenv("RUNNER_REGISTRY_USERNAME")
    monkeypatch.delenv("RUNNER_REGISTRY_PASSWORD")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (no_login / "config.json").write_text(json.dumps({"auths": {locked_registry.host: {"auth": token}}}))
    code, out = _cli("pull", reference, "--out", str(tmp_path / "p.tar.zst"))
    assert code == 0, out
    assert (tmp_path / "p.tar.zst").read_bytes() == pack.read_bytes()


def test_wrong_or_missing_credentials_are_refused_in_one_line(
    locked_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = _pack(tmp_path, "refused")
    code, out = _cli("push", str(pack), f"{locked_registry.host}/team/locked:v2")
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "wants credentials" in out and "docker login" in out

    monkeypatch.setenv("RUNNER_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("RUNNER_REGISTRY_PASSWORD", "wrong-password")
    for args in (
        ("push", str(pack), f"{locked_registry.host}/team/locked:v2"),
        ("pull", f"{locked_registry.host}/team/locked:v2", "--out", str(tmp_path / "x.tar.zst")),
    ):
        code, out = _cli(*args)
        assert code == 2 and len(out.strip().splitlines()) == 1, out
        assert f"refused the credentials of '{USER}'" in out
        assert "wrong-password" not in out
    assert not (tmp_path / "x.tar.zst").exists()


def test_replay_and_inspect_by_oci_reference_then_from_the_cache(
    own_images: Any, tmp_path: Path, no_login: Path
) -> None:
    """`runner replay oci://REF@sha256:...` as a user runs it; a second replay needs no registry."""
    (tmp_path / "packs").mkdir()
    pack = build(ROOT / "packs" / "src" / "demo-fix", tmp_path / "packs")
    root = tmp_path / "registry"
    root.mkdir()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "DOCKER_CONFIG": str(no_login)}
    with serve(root) as registry:
        pushed = oci.push(pack, f"{registry.host}/team/demo:v1")
        ref = f"oci://{pushed.reference}"
        first = runner("replay", ref, cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stdout + first.stderr
    second = runner("replay", ref, cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    shown = runner("inspect", ref, "--json", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["manifest"]["agent"]["name"] == "demo-agent", (
        shown.stderr
    )
