"""The runner's own images, tagged by a content hash of their recipe so that an unchanged recipe is never rebuilt.

Inputs: the recipes in images/ (base package list and Dockerfiles), the repository's proxy/ folder, the host's
apt mirror and suite (runner.host), and the build trust (CA bundle, pip index). Outputs: `ImageRef`s.

- `runner-base:<hash>`: debootstrap (minbase) of the host's Debian suite from the host's apt mirror, then
  `docker import`; or, with `base_from=IMAGE@sha256:...`, images/base/Dockerfile FROM that pinned image.
- `runner-proxy:<hash>`: images/proxy/Dockerfile FROM the base, mitmproxy at the host's version, proxy/ copied.
- `build_image` is the general builder (recipe directory or Dockerfile text, build args, extra context files);
  later stages build environment images with it.

Rules: the tag is `<prefix>:<first 20 hex of sha256(context files, hashed build args)>`; build trust (CA bundle,
index URLs) is passed to the build but left out of the hash, since it changes how files are fetched, not which.
A tag that exists locally is reused unless `force`. One build per tag at a time: builds of the same tag wait
on a file lock (threads of one replay and other processes alike) and reuse what the first one built.
Builds use network `host`. Every image carries the `runner.owner=runner` label. Full build output goes to a
log file whose path is in every build error.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors

import proxy
from runner.engine.containers import labels
from runner.engine.host import BuildTrust, apt_entries, debian_mirror, os_release, runner_home
from runner.errors import ImageError, UsageError
from runner.progress import Progress, Silent, run_logged, tail

__all__ = [
    "BASE_PREFIX",
    "PROXY_PREFIX",
    "TRUST_DOCKERFILE",
    "ImageRef",
    "ImageRole",
    "ImageSet",
    "Planned",
    "build_image",
    "check_base_from",
    "ensure",
    "log_dir",
    "plan",
    "recipe_hash",
    "tag_for",
]

# Both ship in the wheel (images/ as runner._images), so an installed runner builds from any directory.
RECIPES = Path(str(resources.files("runner._images")))
PROXY_SOURCE = Path(proxy.__file__).resolve().parent
BASE_PREFIX = "runner-base"
PROXY_PREFIX = "runner-proxy"
TRUST_DIR = ".runner-build"
# Lines a Dockerfile stage that downloads with pip puts before its RUN: the trust files and the pip settings
# `build_image` passes as build args (each is unset when the host has none).
TRUST_DOCKERFILE = (
    f"COPY {TRUST_DIR}/ /tmp/runner-build/\nARG PIP_CERT\nARG PIP_INDEX_URL\nARG PIP_EXTRA_INDEX_URL\n"
)
# What `docker import` cannot take from a root filesystem: the image config a Dockerfile would set.
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)
_SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}
_DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$")
_FROM_STEP = re.compile(r"^Step \d+/\d+ : FROM ", re.IGNORECASE)

ImageRole = Literal["base", "proxy"]  # the runner's own images; environment images have none


@dataclass(frozen=True)
class ImageRef:
    tag: str
    id: str
    built: bool


@dataclass(frozen=True)
class ImageSet:
    base: ImageRef
    proxy: ImageRef


@dataclass(frozen=True)
class Planned:
    """An image the current recipes call for, by tag, before anything is built."""

    name: ImageRole
    tag: str


def log_dir() -> Path:
    """Where build logs go: $RUNNER_HOME/logs, default ~/.cache/runner/logs."""
    return runner_home() / "logs"


def recipe_hash(files: Mapping[str, bytes], args: Mapping[str, str]) -> str:
    """sha256 over file names and contents and over build args, independent of order; lengths frame each part."""
    digest = hashlib.sha256()
    for kind, items in (("file", files), ("arg", {k: v.encode() for k, v in args.items()})):
        for name in sorted(items):
            for part in (kind.encode(), name.encode(), items[name]):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
    return digest.hexdigest()


def _tag(prefix: str, files: Mapping[str, bytes], args: Mapping[str, str]) -> str:
    return f"{prefix}:{recipe_hash(files, args)[:20]}"


def tag_for(
    recipe: Path | str,
    *,
    tag_prefix: str,
    build_args: Mapping[str, str] | None = None,
    extra: Mapping[str, Path] | None = None,
) -> str:
    """The tag `build_image` gives these arguments, computed without an engine."""
    return _tag(tag_prefix, _context(recipe, extra or {}), dict(build_args or {}))


@contextmanager
def _one_build(tag: str) -> Iterator[None]:
    """Hold the build lock of `tag`: an flock on its own open file, so threads and processes both wait."""
    lock = log_dir() / "locks" / f"{tag.replace(':', '-')}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _walk(root: Path, under: str) -> Iterator[tuple[str, Path]]:
    """(context name, path) of every file below `root`, skipping caches; symlinks are refused."""
    if root.is_file():
        yield under, root
        return
    if not root.is_dir():
        raise ImageError(f"recipe part {root} is missing; run from a checkout of the repository")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if _SKIP.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise ImageError(f"{path} is a symlink; image recipes must hold plain files")
        if path.is_file():
            yield f"{under}/{rel.as_posix()}" if under else rel.as_posix(), path


def _context(recipe: Path | str, extra: Mapping[str, Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if isinstance(recipe, Path):
        files.update((name, path.read_bytes()) for name, path in _walk(recipe, ""))
        if "Dockerfile" not in files:
            raise ImageError(f"{recipe} has no Dockerfile")
    else:
        files["Dockerfile"] = recipe.encode()
    for under, source in extra.items():
        files.update((name, path.read_bytes()) for name, path in _walk(source, under))
    return files


def _trust_args(trust: BuildTrust | None) -> dict[str, str]:
    if trust is None:
        return {}
    args = {"PIP_CERT": "/tmp/runner-build/ca.crt"} if trust.ca_bundle else {}
    if trust.pip_index_url:
        args["PIP_INDEX_URL"] = trust.pip_index_url
    if trust.pip_extra_index_url:
        args["PIP_EXTRA_INDEX_URL"] = trust.pip_extra_index_url
    return args


def _existing(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot look up image {tag}: {e}") from e


def build_image(
    client: docker.DockerClient,
    recipe: Path | str,
    *,
    tag_prefix: str,
    build_args: Mapping[str, str] | None = None,
    extra: Mapping[str, Path] | None = None,
    trust: BuildTrust | None = None,
    force: bool = False,
    progress: Progress | None = None,
    image_labels: Mapping[str, str] | None = None,
    drop_stages: bool = False,
) -> ImageRef:
    """Build `recipe` (a directory holding a Dockerfile, or Dockerfile text) unless its tag already exists.

    `extra` adds files or folders to the context under the given names. The trust files are in the
    context under .runner-build/ (see TRUST_DOCKERFILE); pip picks them up through the build args.
    `image_labels` are added to the image (not to the tag's hash). `drop_stages` removes the untagged images
    the earlier stages of a multi-stage build leave behind (their layers are build cache the final image
    does not share, and a recipe whose tag exists is never built again).
    """
    progress = progress or Silent()
    build_args = dict(build_args or {})
    files = _context(recipe, extra or {})
    tag = _tag(tag_prefix, files, build_args)
    if not force and (found := _existing(client, tag)):
        return ImageRef(tag, found, built=False)
    with _one_build(tag):
        if not force and (found := _existing(client, tag)):  # built by another while this one waited
            return ImageRef(tag, found, built=False)
        log = log_dir() / f"build-{tag.replace(':', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"build {tag} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n", encoding="utf-8")
        progress.step(f"building {tag}")
        with tempfile.TemporaryDirectory(prefix="runner-build-") as tmp:
            context = Path(tmp)
            for name, content in files.items():
                (context / name).parent.mkdir(parents=True, exist_ok=True)
                (context / name).write_bytes(content)
            (context / TRUST_DIR).mkdir(exist_ok=True)
            bundle = context / TRUST_DIR / "ca.crt"
            if trust and trust.ca_bundle:
                shutil.copyfile(trust.ca_bundle, bundle)
            else:
                bundle.touch()
            started = time.monotonic()
            args = {**build_args, **_trust_args(trust)}
            image_id, stages = _run_build(
                client, context, tag, args, force, log, progress, image_labels or {}
            )
        if drop_stages:
            _drop_untagged(client, stages)
        progress.done(f"built {tag} in {time.monotonic() - started:.0f}s")
        return ImageRef(tag, image_id, built=True)


def _drop_untagged(client: docker.DockerClient, ids: list[str]) -> None:
    """Remove these images when nothing tags them; one that is tagged or in use stays (it is not ours)."""
    for image_id in ids:
        with suppress(docker.errors.DockerException):
            if not client.images.get(image_id).tags:
                client.images.remove(image_id)


def _run_build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    args: Mapping[str, str],
    no_cache: bool,
    log: Path,
    progress: Progress,
    image_labels: Mapping[str, str],
) -> tuple[str, list[str]]:
    """The built image's id, and the last image of each earlier stage (the classic builder prints
    ` ---> ID` after every step; a `FROM` step after the first starts a new stage)."""
    image_id: str | None = None
    stages: list[str] = []
    last: str | None = None
    with log.open("a", encoding="utf-8") as sink:
        try:
            stream: Iterator[dict[str, Any]] = client.api.build(
                path=str(context), tag=tag, buildargs=dict(args),
                labels=labels({**image_labels, "runner.recipe": tag}),
                network_mode="host", rm=True, forcerm=True, pull=False, nocache=no_cache, decode=True,
            )  # fmt: skip
            for chunk in stream:
                if "error" in chunk:
                    sink.write(f"ERROR: {chunk['error']}\n")
                    sink.flush()
                    raise ImageError(
                        f"building {tag} failed: {str(chunk['error']).strip()}\n"
                        f"last lines of the build log {log}:\n{tail(log)}"
                    )
                text = chunk.get("stream")
                if text:
                    sink.write(text)
                    progress.line(text)
                    if m := _STEP_ID.match(text):
                        last = m.group(1)
                    elif _FROM_STEP.match(text) and last is not None:
                        stages.append(last)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
        except docker.errors.DockerException as e:
            raise ImageError(f"building {tag} failed: {e}; full log in {log}") from e
    return image_id or _existing(client, tag) or _missing_after_build(tag, log), stages


def _missing_after_build(tag: str, log: Path) -> str:
    raise ImageError(f"the engine reported no image for {tag} after building it; full log in {log}")


# --- the base image -------------------------------------------------------------------------------------


def _packages() -> list[str]:
    text = (RECIPES / "base" / "packages").read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _dpkg_arch() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise ImageError(
            "cannot tell the Debian architecture (`dpkg --print-architecture` failed); build the base "
            "from a registry image with `runner images build --base-from IMAGE@sha256:...`"
        ) from e


def check_base_from(ref: str) -> str:
    """`ref` itself if it names an image pinned by digest (NAME@sha256:<64 hex>); UsageError otherwise."""
    if not _DIGEST_REF.match(ref):
        raise UsageError(
            f"--base-from {ref!r} is not pinned by digest; pass IMAGE@sha256:<64 hex>, "
            "e.g. debian@sha256:... (see `docker images --digests`)"
        )
    return ref


@dataclass(frozen=True)
class _BaseRecipe:
    tag: str
    base_from: str | None
    suite: str = ""
    arch: str = ""


def _base_recipe(base_from: str | None) -> _BaseRecipe:
    if base_from:
        recipe = RECIPES / "base"
        tag = _tag(BASE_PREFIX, _context(recipe, {}), {"BASE_FROM": check_base_from(base_from)})
        return _BaseRecipe(tag, base_from)
    release = os_release()
    if not release.is_debian_family:
        raise ImageError(
            f"the offline base image is debootstrapped from the host's Debian suite, and this host is "
            f"{release.id or 'not Debian'}; use `runner images build --base-from IMAGE@sha256:...`"
        )
    suite = debian_mirror(release, apt_entries()).suite
    arch = _dpkg_arch()
    args = {"method": "debootstrap", "suite": suite, "arch": arch, "changes": "\n".join(IMPORT_CHANGES)}
    files = {"packages": (RECIPES / "base" / "packages").read_bytes()}
    return _BaseRecipe(_tag(BASE_PREFIX, files, args), None, suite, arch)


def _build_base(client: docker.DockerClient, force: bool, progress: Progress) -> ImageRef:
    recipe = _base_recipe(None)
    if not force and (found := _existing(client, recipe.tag)):
        return ImageRef(recipe.tag, found, built=False)
    if os.geteuid() != 0:
        raise ImageError(
            f"building {recipe.tag} runs debootstrap, which needs root; run `runner images build` as root, "
            "or build FROM a registry image with `--base-from IMAGE@sha256:...`"
        )
    if shutil.which("debootstrap") is None:
        raise ImageError(
            "debootstrap is not installed; run `runner doctor --fix` (as root) or apt-get install it"
        )
    mirror = debian_mirror(os_release(), apt_entries())
    log = log_dir() / f"build-{recipe.tag.replace(':', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"debootstrap {recipe.suite} from {mirror.uri} ({mirror.origin})\n", encoding="utf-8")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="runner-base-"))
    try:
        root = work / "root"
        argv = [
            "debootstrap", "--variant=minbase", f"--arch={recipe.arch}", "--components=main",
            f"--include={','.join(_packages())}",
        ]  # fmt: skip
        if mirror.signed_by and Path(mirror.signed_by).is_file():
            argv.append(f"--keyring={mirror.signed_by}")
        progress.step(f"debootstrap {recipe.suite} ({recipe.arch}) for {recipe.tag}")
        if run_logged([*argv, recipe.suite, str(root), mirror.uri], log=log, progress=progress) != 0:
            raise ImageError(f"debootstrap failed; last lines of {log}:\n{tail(log)}")
        _trim(root)
        progress.step(f"importing {recipe.tag}")
        tarball = work / "rootfs.tar"
        if run_logged(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."], log=log,
                      progress=progress) != 0:  # fmt: skip
            raise ImageError(f"packing the base root filesystem failed; see {log}")
        name, _, version = recipe.tag.partition(":")
        changes = [
            *IMPORT_CHANGES,
            *(f"LABEL {k}={v}" for k, v in labels({"runner.recipe": recipe.tag}).items()),
        ]
        try:
            client.api.import_image_from_file(str(tarball), repository=name, tag=version, changes=changes)
        except docker.errors.DockerException as e:
            raise ImageError(f"docker import of {recipe.tag} failed: {e}; log in {log}") from e
    finally:
        _remove_tree(work)
    image_id = _existing(client, recipe.tag) or _missing_after_build(recipe.tag, log)
    progress.done(f"built {recipe.tag} in {time.monotonic() - started:.0f}s")
    return ImageRef(recipe.tag, image_id, built=True)


def _trim(root: Path) -> None:
    """Drop what only the build needed: package lists and caches, and the host's resolver settings."""
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/log/*.log",
    ):
        for path in root.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_file() and not resolv.is_symlink():
        resolv.write_text("", encoding="utf-8")


def _remove_tree(work: Path) -> None:
    """Remove a debootstrap work folder, unmounting first what an interrupted debootstrap left mounted in it."""
    prefix = str(work.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if any(line.split()[1].startswith(prefix) for line in Path("/proc/self/mounts").read_text().splitlines()):
        raise ImageError(f"{work} still has mounts under it; unmount them and remove the folder by hand")
    shutil.rmtree(work, ignore_errors=True)


# --- the set ---------------------------------------------------------------------------------------------


def _proxy_args(base_tag: str) -> dict[str, str]:
    return {"BASE_IMAGE": base_tag, "MITMPROXY_VERSION": importlib.metadata.version("mitmproxy")}


def plan(base_from: str | None = None) -> tuple[Planned, Planned]:
    """The tags the current recipes call for (base, proxy), computed without building anything."""
    base = _base_recipe(base_from).tag
    files = _context(RECIPES / "proxy", {"proxy": PROXY_SOURCE})
    return Planned("base", base), Planned("proxy", _tag(PROXY_PREFIX, files, _proxy_args(base)))


def ensure(
    client: docker.DockerClient,
    *,
    base_from: str | None = None,
    trust: BuildTrust | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> ImageSet:
    """The base and proxy images, each built only when its tag is missing (or `force`)."""
    progress = progress or Silent()
    trust = trust or BuildTrust.from_host()
    if base_from:
        base = build_image(
            client, RECIPES / "base", tag_prefix=BASE_PREFIX, build_args={"BASE_FROM": check_base_from(base_from)},
            trust=trust, force=force, progress=progress,
        )  # fmt: skip
    else:
        base = _build_base(client, force, progress)
    proxy = build_image(
        client, RECIPES / "proxy", tag_prefix=PROXY_PREFIX, build_args=_proxy_args(base.tag),
        extra={"proxy": PROXY_SOURCE}, trust=trust, force=force, progress=progress,
    )  # fmt: skip
    return ImageSet(base, proxy)
