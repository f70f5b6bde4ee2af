from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from runner.engine import images
from runner.engine.host import BuildTrust
from runner.errors import ImageError, UsageError


def test_recipe_hash_ignores_order_and_sees_every_part() -> None:
    base = images.recipe_hash({"a": b"1", "b": b"2"}, {"X": "1"})
    assert base == images.recipe_hash({"b": b"2", "a": b"1"}, {"X": "1"})
    assert (
        len(
            {
                base,
                images.recipe_hash({"a": b"1", "b": b"3"}, {"X": "1"}),
                images.recipe_hash({"a": b"1", "c": b"2"}, {"X": "1"}),
                images.recipe_hash({"a": b"1", "b": b"2"}, {"X": "2"}),
                images.recipe_hash({"a": b"1", "b": b"2"}, {}),
            }
        )
        == 5
    )
    # Framing: moving bytes between a name and its content must change the hash.
    assert images.recipe_hash({"ab": b"c"}, {}) != images.recipe_hash({"a": b"bc"}, {})
    # A file and a build arg with the same name and bytes are different recipes.
    assert images.recipe_hash({"k": b"v"}, {}) != images.recipe_hash({}, {"k": "v"})


def _recipe(tmp_path: Path) -> tuple[Path, Path]:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text("FROM scratch\n")
    addon = tmp_path / "addon"
    (addon / "__pycache__").mkdir(parents=True)
    (addon / "__init__.py").write_text("")
    (addon / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    return recipe, addon


def test_context_takes_the_recipe_and_extras_but_not_caches(tmp_path: Path) -> None:
    recipe, addon = _recipe(tmp_path)
    files = images._context(recipe, {"proxy": addon})
    assert set(files) == {"Dockerfile", "proxy/__init__.py"}
    assert images._context("FROM scratch\n", {}) == {"Dockerfile": b"FROM scratch\n"}


def test_context_refuses_symlinks_and_missing_parts(tmp_path: Path) -> None:
    recipe, addon = _recipe(tmp_path)
    (addon / "link.py").symlink_to("/etc/passwd")
    with pytest.raises(ImageError, match="symlink"):
        images._context(recipe, {"proxy": addon})
    with pytest.raises(ImageError, match="missing"):
        images._context(recipe, {"proxy": tmp_path / "nowhere"})
    with pytest.raises(ImageError, match="no Dockerfile"):
        images._context(addon / "__pycache__", {})


def test_plan_changes_the_proxy_tag_when_the_addon_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, addon = _recipe(tmp_path)
    monkeypatch.setattr(images, "PROXY_SOURCE", addon)
    ref = "debian@sha256:" + "a" * 64
    base, proxy = images.plan(ref)
    assert base.tag.startswith("runner-base:") and proxy.tag.startswith("runner-proxy:")
    assert images.plan(ref) == (base, proxy)
    (addon / "serve.py").write_text("class Serve: ...\n")
    base2, proxy2 = images.plan(ref)
    assert base2 == base and proxy2.tag != proxy.tag
    assert images.plan("debian@sha256:" + "b" * 64)[0].tag != base.tag


@pytest.mark.parametrize(
    "ref", ["debian:bookworm", "debian@sha256:abc", "debian:bookworm@sha256:" + "G" * 64, ""]
)
def test_base_from_must_be_pinned_by_digest(ref: str) -> None:
    with pytest.raises(UsageError, match="not pinned by digest"):
        images.check_base_from(ref)


class _Images:
    def __init__(self, existing: dict[str, str]) -> None:
        self.existing = existing

    def get(self, tag: str) -> Any:
        if tag not in self.existing:
            raise docker.errors.ImageNotFound(tag)
        return type("Image", (), {"id": self.existing[tag]})()


class _Api:
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.builds: list[dict[str, Any]] = []

    def build(self, **kwargs: Any) -> Any:
        self.builds.append(kwargs)
        context = Path(kwargs["path"])
        self.context_files = sorted(
            p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()
        )
        self.client.images.existing[kwargs["tag"]] = "sha256:new"
        yield {"stream": "Step 1/1 : FROM scratch\n"}
        yield {"aux": {"ID": "sha256:new"}}


class _Client:
    def __init__(self, existing: dict[str, str] | None = None) -> None:
        self.images = _Images(existing or {})
        self.api = _Api(self)


def test_build_image_skips_an_existing_tag_and_builds_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    recipe, addon = _recipe(tmp_path)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("PEM")
    trust = BuildTrust(bundle, "https://index.example/simple")
    client = _Client()
    built = images.build_image(
        client, recipe, tag_prefix="t", extra={"proxy": addon}, build_args={"A": "1"}, trust=trust
    )  # type: ignore[arg-type]
    assert built.built and built.id == "sha256:new"
    call = client.api.builds[0]
    assert call["network_mode"] == "host" and call["labels"]["runner.owner"] == "runner"
    assert call["buildargs"] == {
        "A": "1",
        "PIP_CERT": "/tmp/runner-build/ca.crt",
        "PIP_INDEX_URL": "https://index.example/simple",
    }
    assert client.api.context_files == [".runner-build/ca.crt", "Dockerfile", "proxy/__init__.py"]
    assert (tmp_path / "home" / "logs" / f"build-{built.tag.replace(':', '-')}.log").read_text().count(
        "Step 1/1"
    ) == 1

    again = images.build_image(client, recipe, tag_prefix="t", extra={"proxy": addon}, build_args={"A": "1"})  # type: ignore[arg-type]
    assert again == images.ImageRef(built.tag, "sha256:new", built=False)
    assert len(client.api.builds) == 1


def test_a_failed_build_names_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path))
    client = _Client()

    def failing(**kwargs: Any) -> Any:
        yield {"stream": "Step 1/2 : RUN false\n"}
        yield {"error": "The command '/bin/sh -c false' returned a non-zero code: 1"}

    client.api.build = failing  # type: ignore[method-assign]
    with pytest.raises(ImageError) as caught:
        images.build_image(client, "FROM scratch\nRUN false\n", tag_prefix="t")  # type: ignore[arg-type]
    assert "non-zero code" in str(caught.value) and str(tmp_path / "logs") in str(caught.value)
    assert "RUN false" in str(caught.value)


def test_proxy_dockerfile_carries_the_build_trust_lines() -> None:
    dockerfile = (images.RECIPES / "proxy" / "Dockerfile").read_text()
    assert images.TRUST_DOCKERFILE in dockerfile
    assert os.path.isdir(images.PROXY_SOURCE)


def test_tag_for_is_the_tag_build_image_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    recipe, addon = _recipe(tmp_path)
    planned = images.tag_for(recipe, tag_prefix="t", extra={"proxy": addon}, build_args={"A": "1"})
    built = images.build_image(
        _Client(), recipe, tag_prefix="t", extra={"proxy": addon}, build_args={"A": "1"}
    )  # type: ignore[arg-type]
    assert planned == built.tag
    assert images.tag_for(recipe, tag_prefix="t", extra={"proxy": addon}, build_args={"A": "2"}) != planned


class _SlowApi(_Api):
    """A build that waits until every caller has looked for the tag once (or 10 s), then succeeds."""

    def __init__(self, client: _Client, looked: threading.Event) -> None:
        super().__init__(client)
        self.looked = looked

    def build(self, **kwargs: Any) -> Any:
        self.looked.wait(timeout=10)
        yield from super().build(**kwargs)


def test_concurrent_builds_of_one_tag_build_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    client = _Client()
    looked = threading.Event()
    client.api = _SlowApi(client, looked)
    lookups: list[str] = []
    real_get = client.images.get

    def get(tag: str) -> Any:
        lookups.append(tag)
        if len(lookups) >= 3:  # the first build's two checks and the second caller's first one
            looked.set()
        return real_get(tag)

    client.images.get = get  # type: ignore[method-assign]
    text = "FROM scratch\nRUN true\n"
    with ThreadPoolExecutor(max_workers=2) as pool:
        refs = list(pool.map(lambda _: images.build_image(client, text, tag_prefix="t"), range(2)))  # type: ignore[arg-type]
    assert len(client.api.builds) == 1
    assert sorted(r.built for r in refs) == [False, True]
    assert refs[0].tag == refs[1].tag and refs[0].id == refs[1].id == "sha256:new"


def test_drop_stages_removes_the_untagged_images_of_earlier_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    client = _Client({"sha256:base": "sha256:base"})
    tagged = {"sha256:base"}
    removed: list[str] = []

    def build(**kwargs: Any) -> Any:
        client.images.existing[kwargs["tag"]] = "sha256:final"
        for line in ["Step 1/5 : FROM sha256:base AS build", " ---> 0123456789ab", "Step 2/5 : RUN make",
                     " ---> Running in 999999999999", " ---> aaaaaaaaaaaa", "Step 3/5 : FROM sha256:base AS two",
                     " ---> 0123456789ab", "Step 4/5 : FROM sha256:base", " ---> 0123456789ab",
                     "Step 5/5 : COPY --from=build /x /x", " ---> ffffffffffff"]:  # fmt: skip
            yield {"stream": line + "\n"}
        yield {"aux": {"ID": "sha256:final"}}

    def get(ref: str) -> Any:
        if ref in ("aaaaaaaaaaaa", "0123456789ab"):
            return type("Image", (), {"id": ref, "tags": ["base:t"] if ref == "0123456789ab" else []})()
        if ref not in client.images.existing:
            raise docker.errors.ImageNotFound(ref)
        return type(
            "Image", (), {"id": client.images.existing[ref], "tags": [ref] if ref in tagged else []}
        )()

    client.api.build = build  # type: ignore[method-assign]
    client.images.get = get  # type: ignore[method-assign]
    client.images.remove = removed.append  # type: ignore[attr-defined]
    text = "FROM scratch AS build\nRUN make\nFROM scratch\n"
    images.build_image(client, text, tag_prefix="t", drop_stages=True)  # type: ignore[arg-type]
    assert removed == ["aaaaaaaaaaaa"]  # the build stage; the second stage is the tagged base: it stays
    removed.clear()
    images.build_image(client, text + "RUN x\n", tag_prefix="t")  # type: ignore[arg-type]
    assert removed == []
