"""The runner's own images on a real engine: what the base holds, no rebuilds, the proxy's mitmproxy, prune."""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.engine import containers, images
from runner.pack.read import unpack
from runner.replay import environment
from tests.helpers.containers import isolated, output
from tests.packfactory import make_pack

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def built(docker_client: Any) -> images.ImageSet:
    return images.ensure(docker_client)


def _run(image: str, command: list[str]) -> str:
    """What `command` prints in a throwaway container of `image` (network none)."""
    with isolated(image, command) as container:
        return output(container)


def test_base_has_the_tools_replay_needs(docker_client: Any, built: images.ImageSet) -> None:
    out = _run(
        built.base.tag,
        ["sh", "-c", "python3 --version && python3 -m venv --help >/dev/null && git --version && "
                     "patch --version && curl --version && echo LANG=$LANG"],
    )  # fmt: skip
    for expected in ("Python 3.", "git version", "GNU patch", "curl ", "LANG=C.UTF-8"):
        assert expected in out
    labels = docker_client.images.get(built.base.tag).labels
    assert labels["runner.owner"] == "runner"


def test_a_second_ensure_builds_nothing(docker_client: Any, built: images.ImageSet) -> None:
    again = images.ensure(docker_client)
    assert again.base == images.ImageRef(built.base.tag, built.base.id, built=False)
    assert again.proxy == images.ImageRef(built.proxy.tag, built.proxy.id, built=False)
    assert {p.tag for p in images.plan()} == {built.base.tag, built.proxy.tag}


def test_workload_containers_have_only_loopback(docker_client: Any, built: images.ImageSet) -> None:
    # Workloads start through the runner's own container code: its defaults are what is checked here.
    command = ["ls", "/sys/class/net"]
    with containers.started(docker_client, built.base.tag, name_prefix="engine-test", command=command) as c:
        result = c.wait(timeout=60)
        listing = c.logs().decode()
    assert result["StatusCode"] == 0, listing
    assert listing.split() == ["lo"]


def test_proxy_image_runs_the_hosts_mitmproxy_version(built: images.ImageSet) -> None:
    out = _run(built.proxy.tag, ["mitmdump", "--version"])
    assert f"Mitmproxy: {importlib.metadata.version('mitmproxy')}" in out
    listing = _run(built.proxy.tag, ["sh", "-c", "ls /opt/proxy; ls /tmp; echo PIP_CERT=$PIP_CERT"])
    assert "__init__.py" in listing
    assert "runner-build" not in listing and "PIP_CERT=\n" in listing


def test_build_image_builds_from_dockerfile_text_once(docker_client: Any, built: images.ImageSet) -> None:
    text = f"FROM {built.base.tag}\n{images.TRUST_DOCKERFILE}RUN python3 -c 'print(42)' > /answer\n"
    first = images.build_image(docker_client, text, tag_prefix="runner-test-env")
    try:
        second = images.build_image(docker_client, text, tag_prefix="runner-test-env")
        assert (second.tag, second.id, second.built) == (first.tag, first.id, False)
        assert _run(first.tag, ["cat", "/answer"]).strip() == "42"
    finally:
        docker_client.images.remove(first.tag)


def test_prune_removes_only_what_nothing_needs(
    docker_client: Any, built: images.ImageSet, tmp_path: Path
) -> None:
    """Two environment images built the normal way, one needed by a pack in --keep-for; an old-recipe tag on
    the base; a non-runner tag; a container using an image. Others share the engine: `--only` scopes it."""
    uid = uuid.uuid4().hex[:12]
    keep_dir, work = tmp_path / "golden", tmp_path / "work"
    keep_dir.mkdir()
    work.mkdir()
    env: dict[str, str] = {}
    for name, freeze in (("needed", "iniconfig==1.0.1\n"), ("unneeded", "iniconfig==1.0.0\n")):
        pack = make_pack(work, name=f"{name}.tar.zst", files={"env/pip-freeze.txt": freeze.encode()})
        env[name] = environment.resolve(
            docker_client, unpack(pack, work / name), base_image=built.base.tag
        ).image
        if name == "needed":
            pack.rename(keep_dir / pack.name)
    old_base, other = f"runner-base:old{uid}", f"prunetest-other:{uid}"
    docker_client.images.get(built.base.tag).tag(old_base)
    docker_client.images.get(built.base.tag).tag(other)
    scope = [arg for tag in (*env.values(), old_base, other) for arg in ("--only", tag)]
    prune = ["images", "prune", "--keep-for", str(keep_dir), *scope]
    try:
        dry = CliRunner().invoke(app, [*prune, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert f"would remove {env['unneeded']}" in dry.output and "(no pack needs it)" in dry.output
        assert f"would remove {old_base}" in dry.output and "(old recipe)" in dry.output
        assert env["needed"] not in dry.output and other not in dry.output
        assert "1 pack(s) in" in dry.output and "need 1 environment image(s)" in dry.output
        for tag in (*env.values(), old_base, other):
            docker_client.images.get(tag)  # the dry run changed nothing

        with containers.started(
            docker_client, env["unneeded"], name_prefix="prune-test", command=["sleep", "60"]
        ):
            busy = CliRunner().invoke(app, prune)
        assert busy.exit_code == 0, busy.output
        assert f"kept {env['unneeded']}: a container uses it" in busy.output
        assert f"removed {old_base}" in busy.output
        docker_client.images.get(env["unneeded"])

        real = CliRunner().invoke(app, prune)
        assert real.exit_code == 0, real.output
        assert f"removed {env['unneeded']}" in real.output
        freed = int(re.search(r"freed \d+ MB \((\d+) bytes\)", real.output).group(1))  # type: ignore[union-attr]
        assert freed > 0
        for gone in (env["unneeded"], old_base):
            with pytest.raises(docker.errors.ImageNotFound):
                docker_client.images.get(gone)
        for kept in (env["needed"], other, built.base.tag):
            docker_client.images.get(kept)
    finally:
        for tag in (*env.values(), old_base, other):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)
