"""Shared fixtures. Tests that need Docker are marked `docker`; under CI=true a missing engine fails them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.prerequisites import unavailable

if TYPE_CHECKING:
    from runner.engine.images import ImageSet

# Ryuk (testcontainers' reaper) is an image from Docker Hub, and no registry is reachable here; every
# testcontainers container is removed by its own `with` block instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
# A COLUMNS in the environment (some shells export it; pytest-xdist sets it in its workers) would fix the
# width of the CLI's console, made when a test module imports it, whatever COLUMNS a test then sets.
os.environ.pop("COLUMNS", None)
# A test run started in the background (`make test &` in a script, as a CI job may be) inherits SIGINT ignored,
# and every process it starts would keep it so across exec: the tests that press Ctrl-C on a runner process need
# it at its default there, as a terminal gives it (a handler, unlike an ignored signal, is reset by exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
def own_images(docker_client: Any) -> ImageSet:
    """The runner's base and proxy images, built when missing: the only images tests start containers from."""
    from runner.engine import images

    return images.ensure(docker_client)
