"""Shared fixtures. Tests that need Docker are marked `docker`; under CI=true a missing engine fails them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """A docker SDK client for a running engine. Skips locally, fails in CI, when none answers."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # any failure to reach the engine means the same thing here
        message = f"no Docker engine answers ({e}); run `make engine`"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()
