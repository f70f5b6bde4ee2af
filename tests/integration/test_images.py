"""The runner's own images on a real engine: what the base holds, no rebuilds, the proxy's mitmproxy."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from runner.engine import containers, images
from tests.helpers.containers import isolated, output

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
