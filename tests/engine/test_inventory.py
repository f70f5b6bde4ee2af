from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import docker.errors

from runner.engine import inventory

BASE_ID = "sha256:base"


@dataclass
class _Image:
    id: str
    tags: list[str]
    layers: tuple[str, ...]
    size: int
    labels: dict[str, str] = field(default_factory=lambda: {"runner.owner": "runner"})

    @property
    def attrs(self) -> dict[str, Any]:
        return {"Size": self.size, "RootFS": {"Layers": list(self.layers)}}


class _Images:
    def __init__(self, images: list[_Image]) -> None:
        self.all = images
        self.removed: list[str] = []

    def list(self, filters: dict[str, Any] | None = None) -> list[_Image]:
        if filters:  # the runner's label, not dangling
            return [i for i in self.all if i.tags and i.labels.get("runner.owner") == "runner"]
        return list(self.all)

    def remove(self, tag: str) -> None:
        image = next(i for i in self.all if tag in i.tags)
        if image.id == BASE_ID and len(image.tags) == 1:
            raise docker.errors.APIError("conflict", explanation="image has dependent child images")
        self.removed.append(tag)
        image.tags.remove(tag)


class _Container:
    def __init__(self, owner: _Containers, image: str, labels: dict[str, str]) -> None:
        self.owner, self.attrs = owner, {"Image": image, "Config": {"Labels": labels}}

    def remove(self, force: bool = False) -> None:
        self.owner.removed.append(self.attrs["Image"])


class _Containers:
    def __init__(self, images: list[str], spares: list[str]) -> None:
        self.images, self.spares, self.removed = images, spares, []  # type: ignore[var-annotated]

    def list(self, **kwargs: Any) -> list[Any]:
        spare = {"runner.owner": "runner", "runner.role": "spare"}
        return [_Container(self, i, {}) for i in self.images] + [
            _Container(self, i, spare) for i in self.spares
        ]


class _Client:
    def __init__(self, images: list[_Image], used: list[str], spares: list[str] | None = None) -> None:
        self.images = _Images(images)
        self.containers = _Containers(used, spares or [])


def _engine() -> _Client:
    base = _Image(BASE_ID, ["runner-base:now", "runner-base:old"], ("L0",), 100)
    return _Client(
        [
            base,
            _Image("sha256:proxy-now", ["runner-proxy:now"], ("L0", "P1"), 150),
            _Image("sha256:proxy-old", ["runner-proxy:old"], ("L0", "P0"), 140),
            _Image("sha256:env-a", ["runner-env:a"], ("L0", "A"), 130, {"runner.owner": "runner", "runner.base": BASE_ID}),
            _Image("sha256:env-b", ["runner-env:b"], ("L0", "B"), 110, {"runner.owner": "runner", "runner.base": BASE_ID}),
            _Image("sha256:env-c", ["runner-env:c"], ("L0", "C"), 120, {"runner.owner": "runner", "runner.base": "sha256:gone"}),
            _Image("sha256:busy", ["runner-env:busy"], ("L0", "D"), 105, {"runner.owner": "runner", "runner.base": "x"}),
            _Image("sha256:mine", ["someone/app:1"], ("L0", "M"), 180),  # FROM the base: inherits the label
            _Image("sha256:other", ["debian:12"], ("X",), 90, {}),
        ],
        used=["sha256:busy"],
    )  # fmt: skip


def test_prune_without_packs_removes_old_recipes_and_envs_of_other_bases() -> None:
    client = _engine()
    result = inventory.prune(
        client, current={"runner-base:now", "runner-proxy:now"}, base_id=BASE_ID, dry_run=True
    )  # type: ignore[arg-type]
    assert {(r.tag, r.reason) for r in result.removed} == {
        ("runner-base:old", "old recipe"),
        ("runner-proxy:old", "old recipe"),
        ("runner-env:c", "built on another base image"),
    }
    assert result.in_use == ("runner-env:busy",)
    # Each removed image frees only its own layer; an untagged second tag of the base frees nothing.
    assert {r.tag: r.freed for r in result.removed} == {
        "runner-base:old": 0,
        "runner-proxy:old": 40,
        "runner-env:c": 20,
    }
    assert result.freed == 60 and client.images.removed == []  # a dry run


def test_prune_keeps_what_packs_need_and_never_touches_other_images() -> None:
    client = _engine()
    result = inventory.prune(
        client, current={"runner-base:now", "runner-proxy:now"}, base_id=BASE_ID, needed={"runner-env:a"}
    )  # type: ignore[arg-type]
    assert sorted(client.images.removed) == [
        "runner-base:old", "runner-env:b", "runner-env:c", "runner-proxy:old",
    ]  # fmt: skip
    assert result.freed == 60 + 10
    assert all(i.tags for i in client.images.all if i.id in ("sha256:mine", "sha256:other", "sha256:env-a"))


def test_a_refusal_is_reported_and_frees_nothing() -> None:
    client = _engine()
    client.images.all[0].tags.remove("runner-base:now")  # only the old tag left; children depend on it
    result = inventory.prune(client, current={"runner-proxy:now"}, base_id=BASE_ID, only={"runner-base:old"})  # type: ignore[arg-type]
    assert [(r.tag, r.refused) for r in result.removed] == [
        ("runner-base:old", "image has dependent child images")
    ]
    assert result.freed == 0


def test_a_spare_sidecar_does_not_keep_an_old_proxy_image_it_is_removed_with_it() -> None:
    client = _engine()
    client.containers.spares = ["sha256:proxy-old", "sha256:proxy-now"]
    result = inventory.prune(client, current={"runner-base:now", "runner-proxy:now"}, base_id=BASE_ID)  # type: ignore[arg-type]
    assert "runner-proxy:old" in client.images.removed and "runner-proxy:old" not in result.in_use
    assert client.containers.removed == ["sha256:proxy-old"]  # the current proxy's spare waits on
