"""Containers the runner starts, as context managers that always clean up.

Input: a docker client, an image and `docker run`-style keyword arguments. Output: a running
`docker.models.containers.Container` inside a `with` block. Rules: every container carries the
`runner.owner=runner` label (so leak checks and cleanup can find it), runs with network `none` unless told
otherwise, and is removed on exit of the block even when its own start failed, unless `keep` was called on
it (`runner replay --keep`: the user gets a shell in it); a start failure is raised as ExecuteError with the
container's last log lines attached. A container started elsewhere (a claimed spare sidecar) is `adopted`:
removed the same way. `remove` removes several at once (forced: their outputs were collected), before
their blocks end, and `disown` leaves them to another process that removes them; the blocks then have
nothing left to do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.resource import Model

from runner.errors import ExecuteError

__all__ = [
    "OWNER_LABEL",
    "ROLE_LABEL",
    "SPARE_ROLES",
    "Kind",
    "adopted",
    "disown",
    "keep",
    "labels",
    "owned",
    "remove",
    "started",
]

OWNER_LABEL = ("runner.owner", "runner")
ROLE_LABEL = "runner.role"  # proxy | workload | spare | spare-workload
# Containers started ahead for the next replay (runner.replay.spare): a proxy sidecar and a workload beside it.
SPARE_ROLES = ("spare", "spare-workload")
Kind = Literal["containers", "images", "networks", "volumes"]  # the docker SDK's collections that take labels
# Containers the user asked to keep. A flag and not a popped ExitStack: a generator context manager that is
# dropped unfinished is closed by the garbage collector, which would run the removal anyway.
_KEPT: set[str] = set()
_GONE: set[str] = set()  # removed by `remove`, or `disown`ed, before their block ended


def keep(container: Container) -> None:
    """Leave `container` running when its `started` block ends."""
    _KEPT.add(container.id)


def disown(*containers: Container) -> None:
    """Leave these containers to whoever removes them now (a detached process): their blocks end without
    touching them."""
    _GONE.update(c.id for c in containers if c.id and c.id not in _KEPT)


def labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels every object the runner creates carries, plus `extra`."""
    return {OWNER_LABEL[0]: OWNER_LABEL[1], **(extra or {})}


def owned(client: docker.DockerClient, kind: Kind = "containers") -> list[Model]:
    """The objects of one kind labelled as the runner's (Container, Image, ... models), for leak checks."""
    collection = getattr(client, kind)
    selector = f"{OWNER_LABEL[0]}={OWNER_LABEL[1]}"
    if kind == "containers":  # one removed between the listing and its inspection is not there
        return list(collection.list(all=True, filters={"label": selector}, ignore_removed=True))
    return list(collection.list(filters={"label": selector}))


@contextmanager
def started(
    client: docker.DockerClient,
    image: str,
    *,
    name_prefix: str = "runner",
    network_mode: str = "none",
    extra_labels: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Iterator[Container]:
    """Create and start a container; remove it (forced, with its anonymous volumes) when the block ends."""
    name = kwargs.pop("name", None) or f"{name_prefix}-{secrets.token_hex(4)}"
    try:
        container = client.containers.create(
            image, name=name, network_mode=network_mode, labels=labels(extra_labels), **kwargs
        )
    except docker.errors.DockerException as e:
        raise ExecuteError(f"cannot create container {name} from {image}: {e}") from e
    try:
        try:
            container.start()
        except docker.errors.DockerException as e:
            error = ExecuteError(f"container {name} from {image} did not start: {e}")
            error.add_note(f"container logs:\n{_tail_logs(container)}")
            raise error from e
        yield container
    finally:
        _remove(container)
        _GONE.discard(container.id or "")


@contextmanager
def adopted(container: Container) -> Iterator[Container]:
    """A running container started elsewhere, now this block's: removed when it ends, unless kept."""
    try:
        yield container
    finally:
        _remove(container)
        _GONE.discard(container.id or "")


def remove(*containers: Container) -> None:
    """Remove these containers now, all at once (forced, with their anonymous volumes), unless kept. One
    started with auto-remove (a claimed spare) is killed: the engine removes it as it exits, whether or
    not this process is still there to wait for it."""
    with ThreadPoolExecutor(max_workers=max(1, len(containers)), thread_name_prefix="remove") as pool:
        list(pool.map(_end, containers))
    _GONE.update(c.id for c in containers if c.id and c.id not in _KEPT)


def _end(container: Container) -> None:
    if not (container.attrs.get("HostConfig") or {}).get("AutoRemove"):
        _remove(container)
    elif container.id not in _KEPT and container.id not in _GONE:
        try:
            container.kill()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: not running any more; the engine removes it
                raise


def _remove(container: Container) -> None:
    if container.id not in _KEPT and container.id not in _GONE:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: the engine removes it already (a spare's auto-remove)
                raise


def _tail_logs(container: Container, lines: int = 20) -> str:
    try:
        data: bytes = container.logs(tail=lines)
    except docker.errors.DockerException as e:
        return f"(logs unavailable: {e})"
    return data.decode("utf-8", errors="replace").rstrip() or "(no output)"
