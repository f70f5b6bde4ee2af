"""Environment images in Docker: a batch over two environments builds two images, once each, with --jobs 2;
a second replay builds none; each image is the base plus one layer."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from runner.pack.read import unpack
from runner.replay.environment import planned_tag
from tests.gitrepo import make_repo
from tests.integration.test_replay import runner
from tests.packfactory import command, make_pack

pytestmark = pytest.mark.docker

# Two tiny environments (pure-Python wheels; a pin that cannot install still builds, as a warning).
ENVIRONMENTS = {"a": b"iniconfig==2.0.0\n", "b": b"iniconfig==1.1.1\n"}


def _packs(folder: Path, work: Path) -> dict[str, str]:
    """Four packs, two per environment, each with its own command; returns pack name -> environment."""
    make_repo(work / "repo", {"README": "reuse\n"})
    folder.mkdir()
    made = {}
    for env, freeze in ENVIRONMENTS.items():
        for n in range(2):
            name = f"{env}{n}.tar.zst"
            argv = ["python3", "-c", f"print('{env} {n}')"]
            pack = make_pack(
                work, name=name, repo=work / "repo", files={"env/pip-freeze.txt": freeze},
                steps=[command("c1", argv, stdout=f"{env} {n}\n".encode())],
            )  # fmt: skip
            pack.rename(folder / name)
            made[name] = env
    return made


@pytest.fixture()
def env_tags(
    docker_client: Any, own_images: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment tags of the two environments, absent before the test and removed after it. No spare
    containers are started for the next replay: one would hold an environment image the test removes."""
    monkeypatch.setenv("RUNNER_SPARE_PROXY", "0")
    base_id = docker_client.images.get(own_images.base.tag).id
    tags = {}
    for env, freeze in ENVIRONMENTS.items():
        work = Path(tempfile.mkdtemp(dir=tmp_path))
        pack = make_pack(work, files={"env/pip-freeze.txt": freeze})
        tags[env] = str(planned_tag(unpack(pack, work / "u"), base_id))
    for tag in tags.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag)
    yield tags
    for tag in tags.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag)


def _images(report: Path) -> dict[str, str]:
    doc = json.loads(report.read_text())
    assert all(p["verdict"] == "reproduced" for p in doc["packs"]), doc
    return {p["pack"]: p["image"] for p in doc["packs"]}


def test_a_batch_over_two_environments_builds_each_once_then_none(
    docker_client: Any, own_images: Any, env_tags: dict[str, str], tmp_path: Path
) -> None:
    made = _packs(tmp_path / "packs", tmp_path / "work")
    first = runner("replay", "packs", "--jobs", "2", "--json", "first.json", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    images = _images(tmp_path / "first.json")
    for pack, env in made.items():
        assert images[pack].startswith(env_tags[env] + " ("), images
    built = sorted(image for image in images.values() if image.endswith("(built)"))
    assert built == sorted(f"{tag} (built)" for tag in env_tags.values()), images  # one build per environment

    second = runner("replay", "packs", "--jobs", "2", "--json", "second.json", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(image.endswith("(cached)") for image in _images(tmp_path / "second.json").values())

    # Disk: each image is the base's layers plus one (the venv), not a copy of the base.
    base = docker_client.images.get(own_images.base.tag)
    for tag in env_tags.values():
        env = docker_client.images.get(tag)
        layers, base_layers = env.attrs["RootFS"]["Layers"], base.attrs["RootFS"]["Layers"]
        assert layers[: len(base_layers)] == base_layers and len(layers) == len(base_layers) + 1
        assert env.labels["runner.base"] == base.id
