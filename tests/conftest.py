"""Shared fixtures. Tests that need Docker are marked `docker`; under CI=true a missing engine fails them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.prerequisites import unavailable

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """A docker SDK client for a running engine. Skips locally, fails in CI, when none answers."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # any failure to reach the engine means the same thing here
        unavailable(f"no Docker engine answers ({e}); run `make engine`")
    yield client
    client.close()


@pytest.fixture(scope="session")
def own_images(docker_client: Any) -> Any:
    """The runner's base and proxy images (runner.images.ImageSet), built when missing."""
    from runner.engine import images

    return images.ensure(docker_client)
