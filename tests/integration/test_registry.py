"""Pull by digest, for real: a local `docker-registry` on 127.0.0.1 serves the image a pack names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from runner.engine import images
from runner.pack import manifest as mf
from tests.gitrepo import make_repo
from tests.helpers.registry import serve
from tests.integration.test_replay import runner
from tests.packfactory import command, make_pack

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("registry")) as running:
        yield running.host


@pytest.fixture(scope="module")
def pushed(docker_client: Any, registry: str) -> Iterator[tuple[str, str]]:
    """The base image pushed to the registry; yields (name@sha256:digest, image id). The tag is removed."""
    own = images.ensure(docker_client)
    image = docker_client.images.get(own.base.tag)
    repository = f"{registry}/runner-test/base"
    image.tag(repository, "pinned")
    try:
        for line in docker_client.images.push(repository, "pinned", stream=True, decode=True):
            assert "error" not in line, line
        image.reload()
        digest = next(d for d in image.attrs["RepoDigests"] if d.startswith(repository))
    finally:
        docker_client.images.remove(f"{repository}:pinned")
    yield digest, image.id
    for ref in docker_client.images.get(image.id).attrs.get("RepoDigests", []):
        if ref.startswith(repository):
            docker_client.images.remove(ref)


def _pack(tmp_path: Path, reference: str, image_id: str | None) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"hello.txt": "pulled\n"})
    env = mf.Environment(kind="image", image=mf.ImageRef(reference=reference, id=image_id))
    return make_pack(
        tmp_path, repo=repo, environment=env, steps=[command("c1", ["cat", "hello.txt"], stdout=b"pulled\n")]
    )


def test_pull_by_digest(docker_client: Any, pushed: tuple[str, str], tmp_path: Path) -> None:
    reference, image_id = pushed
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(reference)  # nothing local answers to the digest: replay must pull
    # No id in the manifest: the local image with that id must not short-cut the pull.
    proc = runner("replay", str(_pack(tmp_path, reference, None)), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert docker_client.images.get(reference).id == image_id
    assert json.loads(proc.stdout)["packs"][0]["image"].endswith("(pulled)")


def test_digest_mismatch_needs_an_override(pushed: tuple[str, str], tmp_path: Path) -> None:
    reference, _ = pushed
    pack = _pack(tmp_path, reference, "sha256:" + "0" * 64)
    refused = runner("replay", str(pack), "--json", "-", cwd=tmp_path)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "--allow-image-mismatch" in refused.stdout
    allowed = runner("replay", str(pack), "--json", "-", "--allow-image-mismatch", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "image mismatch allowed" in allowed.stdout
