"""What the runner's images are on the engine, and pruning the ones nothing needs any more.

Inputs: a docker client, the tags the current recipes call for (base, proxy), the current base image's id,
and optionally the environment tags some packs need. Outputs: `ImageInfo` rows for `runner images list`, a
`PruneResult` for `runner images prune`.

Rules of pruning: only tags named `runner-base:`, `runner-proxy:` or `runner-env:` on images labelled
`runner.owner=runner` are candidates (an image someone built FROM the base inherits the label but not the
name, and is never touched). A base or proxy tag goes when it is not the current recipe's. An environment
tag goes when packs were named and none needs it, or, with no packs named, when it was built on another
base than the current one (the `runner.base` label of snapshot images; their tags are keyed by the base
image id, so such a tag is never asked for again). An image any container uses (running or stopped)
stays, except a spare sidecar or workload (`runner.role=spare|spare-workload`): it waits only to save
the next replay time, so it is removed with its image. Removal is by tag, without force: the engine refuses to delete an image other images are built on,
and that refusal is reported, not raised. Bytes freed count each layer once: the layers of a removed image that no kept image
holds (sizes by difference with the image holding the longest shared layer prefix).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from runner.engine.containers import OWNER_LABEL, ROLE_LABEL, SPARE_ROLES
from runner.engine.images import BASE_PREFIX, PROXY_PREFIX, Planned
from runner.errors import ImageError

__all__ = ["BASE_LABEL", "ENV_PREFIX", "ImageInfo", "PruneResult", "Removal", "list_images", "prune"]

ENV_PREFIX = "runner-env"
BASE_LABEL = "runner.base"  # on environment images: the id of the base image they were built FROM
_OWNER = f"{OWNER_LABEL[0]}={OWNER_LABEL[1]}"


@dataclass(frozen=True)
class ImageInfo:
    tags: tuple[str, ...]
    id: str
    digests: tuple[str, ...]
    size: int
    created: str
    current: bool


@dataclass(frozen=True)
class Removal:
    tag: str
    id: str
    reason: str
    freed: int  # bytes; 0 when the image keeps another tag
    refused: str | None = None  # the engine's reason when it would not remove the tag


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[Removal, ...]
    in_use: tuple[str, ...]  # tags kept because a container uses their image
    kept: int  # candidate tags kept because something needs them
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(r.freed for r in self.removed if r.refused is None)


def _owned(client: docker.DockerClient) -> list[Any]:
    try:
        return list(client.images.list(filters={"label": _OWNER, "dangling": False}))
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot list images: {e}") from e


def list_images(client: docker.DockerClient, current: tuple[Planned, ...] = ()) -> list[ImageInfo]:
    """Every image labelled as the runner's, newest first; `current` marks those the recipes call for now."""
    wanted = {p.tag for p in current}
    infos = [
        ImageInfo(
            tags=tuple(image.tags),
            id=str(image.id),
            digests=tuple(image.attrs.get("RepoDigests") or ()),
            size=int(image.attrs.get("Size") or 0),
            created=str(image.attrs.get("Created", "")),
            current=bool(wanted.intersection(image.tags)),
        )
        for image in _owned(client)
    ]
    return sorted(infos, key=lambda i: i.created, reverse=True)


def _reason(
    tag: str, image: Any, current: Collection[str], base_id: str, needed: Collection[str] | None
) -> str | None:
    """Why `tag` should go, or None to keep it."""
    prefix = tag.partition(":")[0]
    if prefix in (BASE_PREFIX, PROXY_PREFIX):
        return None if tag in current else "old recipe"
    if prefix != ENV_PREFIX:
        return None
    if needed is not None:
        return None if tag in needed else "no pack needs it"
    # Only snapshot images carry the label; a pack's own Dockerfile names its base by digest.
    built_on = (image.labels or {}).get(BASE_LABEL)
    return None if built_on in (None, base_id) else "built on another base image"


def _containers(client: docker.DockerClient) -> tuple[set[str], dict[str, list[Any]]]:
    """The image ids containers use, and the spare sidecars by image id (which do not count as a use)."""
    try:
        every = list(client.containers.list(all=True, ignore_removed=True))
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot list containers: {e}") from e
    used: set[str] = set()
    spares: dict[str, list[Any]] = {}
    for c in every:
        image = str(c.attrs.get("Image", ""))
        if (c.attrs.get("Config", {}).get("Labels") or {}).get(ROLE_LABEL) in SPARE_ROLES:
            spares.setdefault(image, []).append(c)
        else:
            used.add(image)
    return used, spares


def _remove_spares(spares: list[Any]) -> None:
    for container in spares:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: being removed already (it expired)
                raise


def _layers(image: Any) -> tuple[str, ...]:
    return tuple(image.attrs.get("RootFS", {}).get("Layers") or ())


def _freed(client: docker.DockerClient, going: list[Any]) -> dict[str, int]:
    """Bytes each image of `going` frees, counting every layer once (see the module rules)."""
    ids = {str(i.id) for i in going}
    try:
        everything = list(client.images.list())
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot list images: {e}") from e
    size_of = {_layers(i): int(i.attrs.get("Size") or 0) for i in everything}
    held = [_layers(i) for i in everything if str(i.id) not in ids]
    out: dict[str, int] = {}
    for image in going:
        mine = _layers(image)
        shared = max((_common(mine, other) for other in held), default=0)
        # The size of the shared prefix: the image that is exactly that prefix, else the longest known shorter one.
        prefix = next((size_of[mine[:n]] for n in range(shared, 0, -1) if mine[:n] in size_of), 0)
        out[str(image.id)] = max(0, int(image.attrs.get("Size") or 0) - prefix)
        held.append(mine)  # what a later image shares with this one is already counted
    return out


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def prune(
    client: docker.DockerClient,
    *,
    current: Collection[str],
    base_id: str,
    needed: Collection[str] | None = None,
    dry_run: bool = False,
    only: Collection[str] | None = None,
) -> PruneResult:
    """Remove the runner's image tags nothing needs (module rules); `dry_run` only says which.

    `only` narrows the candidates to these tags (tests on an engine others share)."""
    images = _owned(client)
    used, spares = _containers(client)
    plan: list[tuple[str, Any, str]] = []
    in_use: list[str] = []
    kept = 0
    for image in images:
        for tag in image.tags:
            if only is not None and tag not in only:
                continue
            reason = _reason(tag, image, current, base_id, needed)
            if reason is None:
                kept += tag.partition(":")[0] in (BASE_PREFIX, PROXY_PREFIX, ENV_PREFIX)
            elif str(image.id) in used:
                in_use.append(tag)
            else:
                plan.append((tag, image, reason))
    # Images every tag of which goes are deleted; children first, so a base goes after what is built on it.
    gone_tags = {t for t, _, _ in plan}
    going = [i for i in images if i.tags and set(i.tags) <= gone_tags]
    going.sort(key=lambda i: len(_layers(i)), reverse=True)
    freed = _freed(client, going)
    order = {str(i.id): n for n, i in enumerate(going)}
    plan.sort(key=lambda p: (order.get(str(p[1].id), -1), p[0]))
    removed: list[Removal] = []
    counted: set[str] = set()
    for tag, image, reason in plan:
        image_id = str(image.id)
        last = image_id in freed and image_id not in counted and tag == _last_tag(plan, image_id)
        refused = None
        if not dry_run:
            try:
                _remove_spares(spares.pop(image_id, []))
                client.images.remove(tag)
            except docker.errors.APIError as e:
                refused = str(e.explanation or e).strip()[:200]
        if last and refused is None:
            counted.add(image_id)
        removed.append(Removal(tag, image_id, reason, freed[image_id] if last else 0, refused))
    return PruneResult(tuple(removed), tuple(sorted(in_use)), kept, dry_run)


def _last_tag(plan: list[tuple[str, Any, str]], image_id: str) -> str:
    return [t for t, i, _ in plan if str(i.id) == image_id][-1]
