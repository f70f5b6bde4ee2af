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


@pytest.hookimpl(tryfirst=True)  # before xdist's worker names each test of a group by it
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the Docker engine run one after another on one xdist worker (`--dist loadgroup`): they
    share the engine's spare sidecars and count its containers. They come first, the longest piece of work,
    so the other tests spread over the other workers meanwhile."""
    docker = [item for item in items if item.get_closest_marker("docker")]
    for item in docker:
        item.add_marker(pytest.mark.xdist_group("docker"))
    items[:] = docker + [item for item in items if not item.get_closest_marker("docker")]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a Docker test that xdist's grouping did not take (pytest 9.2 broke it: pytest-xdist#1386): two
    workers would run Docker tests at once, each counting the other's containers as its own leaks."""
    grouped = not getattr(item.config.option, "loadgroup", False) or item.nodeid.endswith("@docker")
    if item.get_closest_marker("docker") and not grouped:
        pytest.fail(
            f"pytest {pytest.__version__} did not keep the Docker tests on one worker (pytest-xdist#1386); "
            'install the pytest pyproject.toml pins (pip install -e ".[test]") or pass -n0',
            pytrace=False,
        )


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
