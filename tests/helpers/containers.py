"""Containers a test starts for its own purposes, through testcontainers, from local images only.

Input: a local image tag (the project's own `runner-base:*`/`runner-proxy:*` from the `own_images`
fixture), a command and a network mode (`none`, or `container:<id>` to join another container's).
Output: an unstarted `DockerContainer`; `with` starts it (waiting by its wait strategy) and removes it.
Rules: Ryuk stays off (tests/conftest.py) and nothing is pulled, since no registry is reachable; the
runner's own container code (runner.engine.containers) is tested through that code, not this.
"""

from __future__ import annotations

from testcontainers.core.container import DockerContainer

__all__ = ["isolated", "output"]


def isolated(image: str, command: list[str], network_mode: str = "none") -> DockerContainer:
    return (
        DockerContainer(image)
        .with_command(command)
        .with_kwargs(
            network_mode=network_mode,
            # Run inside a container, testcontainers joins that container's network unless one is named,
            # and a network cannot be combined with mode `none` or `container:<id>`: name none.
            network=None,
        )
    )


def output(container: DockerContainer, timeout: float = 60) -> str:
    """Wait for a started container to exit 0 and return its stdout (its stderr shows if it did not)."""
    result = container.get_wrapped_container().wait(timeout=timeout)  # the SDK's wait takes a timeout
    stdout, stderr = (stream.decode("utf-8", "replace") for stream in container.get_logs())
    assert result["StatusCode"] == 0, stdout + stderr
    return stdout
