"""Containers started through runner.containers are always removed, even when they fail to start."""

from __future__ import annotations

from typing import Any

import pytest

from runner.engine import containers, images
from runner.errors import ExecuteError

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def base(docker_client: Any) -> str:
    return images.ensure(docker_client).base.tag


def _exists(client: Any, name: str) -> bool:
    return bool(client.containers.list(all=True, filters={"name": f"^{name}$"}))


def test_container_is_labelled_isolated_and_removed(docker_client: Any, base: str) -> None:
    with containers.started(docker_client, base, name_prefix="engine-test", command=["sleep", "30"]) as c:
        name = c.name
        c.reload()
        assert c.status == "running"
        assert c.labels["runner.owner"] == "runner"
        assert c.attrs["HostConfig"]["NetworkMode"] == "none"
        assert any(o.name == name for o in containers.owned(docker_client))
    assert not _exists(docker_client, name)


def test_container_that_cannot_start_is_removed_and_reported(docker_client: Any, base: str) -> None:
    with (
        pytest.raises(ExecuteError, match="did not start") as caught,
        containers.started(docker_client, base, name="engine-test-nostart", command=["/no/such/binary"]),
    ):
        pytest.fail("the block must not run")
    assert not _exists(docker_client, "engine-test-nostart")
    assert any("container logs" in note for note in getattr(caught.value, "__notes__", []))


def test_container_is_removed_when_the_block_raises(docker_client: Any, base: str) -> None:
    with (
        pytest.raises(RuntimeError),
        containers.started(docker_client, base, name="engine-test-raise", command=["sleep", "30"]),
    ):
        raise RuntimeError("boom")
    assert not _exists(docker_client, "engine-test-raise")
