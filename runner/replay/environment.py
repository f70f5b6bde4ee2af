"""Environment stage: the Docker image a pack's commands run in.

Input: a docker client, an unpacked pack, the runner's base image and build trust. Output: a
`ResolvedEnvironment` naming the image, how it was obtained, and environment warnings.

Three kinds, as the manifest says:
- `image`: a local image whose id or repo digest matches, else a pull of `name@sha256:...`; an image
  whose id disagrees with the manifest is refused unless the caller allows the mismatch (then it is a
  warning in the report).
- `dockerfile`: the pack's Dockerfile, built with the pack's `env/` folder as context. Every image it
  names (FROM, COPY --from, RUN --mount from=, a `# syntax=` frontend) must be a literal
  `name@sha256:<64 hex>` once ARG defaults and the one build argument the runner passes (BASE_DIGEST, the
  manifest's pinned base) are substituted, or an earlier stage; the pack can pass no other build argument.
- `snapshot` (a session recorded on a plain host): the base image plus the recorded Python packages at
  their exact versions in /opt/agent-env. Lines that are not plain `name==version` are never handed to pip
  (packs are hostile: no options, URLs or paths); packages that no longer install are warnings.
Every built image is tagged by the hash of its recipe, so the second replay of an environment builds nothing.
A snapshot image's recipe is the base image's id (not its tag: a rebuilt base is another recipe), the
sorted exact pins and the Dockerfile below, whose interpreter is the base's python3; nothing else of the
pack. So packs recorded in one environment share one image, and concurrent replays of them build it once
(runner.engine.images locks each tag). The image is the base plus one layer holding the venv: FROM the
base, never a re-import, and the build stage it came from is removed after the build.
`needed_tags` computes the tags a set of packs would use, without building, for `runner images prune`.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors

from runner.engine.host import BuildTrust
from runner.engine.images import TRUST_DOCKERFILE, build_image, tag_for
from runner.engine.inventory import BASE_LABEL, ENV_PREFIX
from runner.errors import ImageError, PackError
from runner.pack.manifest import Manifest
from runner.pack.read import UnpackedPack, read_manifest, unpack
from runner.progress import Progress, Silent

__all__ = [
    "AGENT_ENV",
    "FAILED_LIST",
    "Provenance",
    "ResolvedEnvironment",
    "check_pinned",
    "needed_tags",
    "planned_tag",
    "requirements",
    "resolve",
    "snapshot_requirements",
    "snapshot_warnings",
]

Provenance = Literal["local", "pulled", "built", "cached"]
"""How the image was had: found here, pulled by digest, built now, or built by an earlier replay."""

AGENT_ENV = "/opt/agent-env"
FAILED_LIST = f"{AGENT_ENV}/.runner-failed"  # requirements that did not install, one a line
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]{0,100}$"
)
_PINNED = re.compile(r"[a-z0-9][A-Za-z0-9._/:-]*@sha256:[0-9a-f]{64}")  # the manifest schema's image_ref
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}$]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
# Build arguments the runner's image builder adds from the host (runner.engine.images): never pinned images.
_HOST_BUILD_ARGS = frozenset({"PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"})
_DIRECTIVE = re.compile(r"\s*#\s*([A-Za-z]+)\s*=\s*(\S+)\s*")

# Exact versions, no dependency resolution (the freeze lists them all); on failure, one at a time so a
# package that no longer installs costs only itself, and is written down for the report.
_SNAPSHOT_DOCKERFILE = f"""\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}} AS build
{TRUST_DOCKERFILE}COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv {AGENT_ENV} && touch {FAILED_LIST} \\
 && ( {AGENT_ENV}/bin/pip install --no-deps --no-cache-dir --disable-pip-version-check -q -r /tmp/requirements.txt \\
   || while read -r req; do \\
        {AGENT_ENV}/bin/pip install --no-deps --no-cache-dir --disable-pip-version-check -q "$req" \\
          || echo "$req" >> {FAILED_LIST}; \\
      done < /tmp/requirements.txt )

FROM ${{BASE_IMAGE}}
COPY --from=build {AGENT_ENV} {AGENT_ENV}
ENV PATH={AGENT_ENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    VIRTUAL_ENV={AGENT_ENV}
"""


@dataclass(frozen=True)
class ResolvedEnvironment:
    image: str  # what `docker run` takes: a tag or an id
    image_id: str
    how: Provenance
    warnings: tuple[str, ...] = ()


def requirements(freeze: str) -> tuple[list[str], list[str]]:
    """Split a recorded `pip freeze` into installable `name==version` lines and warnings for the rest."""
    keep: list[str] = []
    warnings: list[str] = []
    for raw in freeze.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if _REQUIREMENT.match(line):
            keep.append(line)
        else:
            warnings.append(f"recorded package line {line[:80]!r} is not `name==version`; not installed")
    return sorted(set(keep), key=str.lower), warnings


def snapshot_warnings(root: Path, where: str = "the replay image") -> list[str]:
    """Editable and URL installs the recorder saw: they cannot come from an index."""
    path = root / "env" / "snapshot.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        packages = data.get("packages") or []
        return [
            f"{p['name']} {p['version']} was installed {'editable' if p.get('editable') else 'from a URL'}; "
            f"not in {where}"
            for p in packages
            if isinstance(p, dict) and (p.get("editable") or p.get("direct_url"))
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ["env/snapshot.json is not readable; environment differences may be missing from this report"]


def snapshot_requirements(pack: UnpackedPack) -> tuple[list[str], list[str]]:
    """The exact pins a snapshot pack's environment installs, and warnings for the recorded lines it cannot:
    the one recipe of the image (Docker) and the virtualenv (local backend)."""
    snap = pack.manifest.environment.snapshot
    assert snap is not None
    freeze = (pack.path / snap.packages).read_text(encoding="utf-8", errors="replace")
    return requirements(freeze)


def _snapshot_recipe(pack: UnpackedPack, base_id: str) -> tuple[dict[str, str], dict[str, Path], list[str]]:
    """(build args, extra context files, warnings) of a snapshot pack's image on the base `base_id`."""
    keep, warnings = snapshot_requirements(pack)
    extra = {"requirements.txt": _text_file(pack.path / ".runner-requirements.txt", keep)}
    return {"BASE_IMAGE": base_id}, extra, warnings


def _from_snapshot(
    client: docker.DockerClient, pack: UnpackedPack, base: str, trust: BuildTrust, progress: Progress
) -> ResolvedEnvironment:
    base_id = _base_id(client, base)
    args, extra, warnings = _snapshot_recipe(pack, base_id)
    ref = build_image(
        client, _SNAPSHOT_DOCKERFILE, tag_prefix=ENV_PREFIX, build_args=args, extra=extra, trust=trust,
        progress=progress, image_labels={BASE_LABEL: base_id}, drop_stages=True,
    )  # fmt: skip
    warnings += snapshot_warnings(pack.path)
    return ResolvedEnvironment(ref.tag, ref.id, "built" if ref.built else "cached", tuple(warnings))


def _base_id(client: docker.DockerClient, base: str) -> str:
    image = _local(client, base)
    if image is None:
        raise ImageError(f"the base image {base} is not here; run `runner images build`")
    return str(image.id)


def _text_file(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _instructions(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The parser directives and the (INSTRUCTION, arguments) of a Dockerfile, continuation lines joined
    and comment lines dropped, as the builder reads them."""
    lines = text.removeprefix("\ufeff").splitlines()
    directives: dict[str, str] = {}
    while lines and (m := _DIRECTIVE.fullmatch(lines[0])):
        directives[m.group(1).lower()] = m.group(2)
        lines.pop(0)
    escape = directives.get("escape", "\\")
    out: list[tuple[str, str]] = []
    current = ""
    for line in [*lines, ""]:
        if line.lstrip().startswith("#") or (current and not line.strip()):
            continue  # comments go, also between continuation lines, and so do blank continuation lines
        stripped = line.rstrip()
        if stripped.endswith(escape):
            current += stripped[: -len(escape)]
            continue
        word, _, rest = re.sub(r"\s", " ", current + line).strip().partition(" ")
        if word:
            out.append((word.upper(), rest.strip()))
        current = ""
    return directives, out


def _substitute(value: str, args: dict[str, str]) -> str:
    """`value` with $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} replaced; other forms stay (unpinned)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        current = args.get(name, "")
        if m.group(2) == ":-":
            return current or m.group(3)
        if m.group(2) == ":+":
            return m.group(3) if current else ""
        return current

    return _VARIABLE.sub(one, value)


def check_pinned(text: str, where: str, build_args: dict[str, str]) -> None:
    """Refuse a Dockerfile naming any image that is not digest-pinned (PackError naming it and `where`).

    Variables in image names take the values of the global ARGs (declared before the first FROM): their
    defaults, or the runner's `build_args` for an ARG that declares one; an undeclared variable is empty,
    as in Docker. `--platform=` is allowed, `scratch` and earlier stages (by name, or by index in --from)
    too."""
    directives, instructions = _instructions(text)
    syntax = directives.get("syntax")
    if syntax is not None and not _PINNED.fullmatch(syntax):
        raise PackError(
            f"{where}: the # syntax={syntax[:100]} frontend is not pinned; pin it as name@sha256:..."
        )
    args: dict[str, str] = {}
    stages: list[str] = []
    for word, rest in instructions:
        if word == "ARG" and not stages:
            try:
                tokens = shlex.split(rest)
            except ValueError as e:
                raise PackError(f"{where}: ARG {rest[:100]!r} cannot be read ({e})") from e
            for token in tokens:
                name, _, default = token.partition("=")
                args[name] = build_args.get(
                    name, f"<{name} from the host>" if name in _HOST_BUILD_ARGS else default
                )
        elif word == "FROM":
            tokens = rest.split()
            while tokens and tokens[0].startswith("--"):
                if not tokens.pop(0).lower().startswith("--platform="):
                    raise PackError(f"{where}: FROM {rest[:100]} has a flag other than --platform=")
            if not tokens or (len(tokens) not in (1, 3) or (len(tokens) == 3 and tokens[1].upper() != "AS")):
                raise PackError(
                    f"{where}: FROM {rest[:100]!r} is not `FROM [--platform=...] image [AS name]`"
                )
            _check_image(tokens[0], args, stages, where, "FROM")
            stages.append(tokens[2].lower() if len(tokens) == 3 else "")
        elif word in ("COPY", "ADD", "RUN"):
            for source in re.findall(r"(?:--from=|--mount=\S*?\bfrom=)([^\s,]+)", rest):
                if "$" in source:  # stage-scoped ARGs and ENV could change it: only literals are checked
                    raise PackError(f"{where}: {word} --from={source[:100]} uses a variable; write it out")
                _check_image(source, {}, stages, where, f"{word} --from", by_index=True)


def _check_image(
    raw: str, args: dict[str, str], stages: list[str], where: str, what: str, by_index: bool = False
) -> None:
    image = _substitute(raw, args)
    if by_index and image.isdigit():
        earlier = int(image) < len(stages)
    else:
        earlier = bool(image) and image.lower() in stages
    if earlier or image == "scratch" or _PINNED.fullmatch(image):
        return
    shown = raw if image == raw else f"{raw} (= {image!r})"
    raise PackError(
        f"{where}: {what} {shown[:200]} is not an earlier stage nor pinned by digest; "
        "pin it as name@sha256:<64 hex>"
    )


def _dockerfile_recipe(pack: UnpackedPack) -> tuple[Path, dict[str, str]]:
    """The checked Dockerfile of a `dockerfile` pack and its build arguments."""
    ref = pack.manifest.environment.dockerfile
    assert ref is not None
    dockerfile = pack.path / ref.path
    if ref.path != "env/Dockerfile" or not dockerfile.is_file():  # the file the build reads
        raise PackError(f"{ref.path}: the Dockerfile must be the pack's env/Dockerfile")
    build_args = {"BASE_DIGEST": ref.base_digest}  # pinned (the manifest schema says so); nothing else
    check_pinned(dockerfile.read_text(encoding="utf-8", errors="replace"), ref.path, build_args)
    return dockerfile, build_args


def _from_dockerfile(
    client: docker.DockerClient, pack: UnpackedPack, trust: BuildTrust, progress: Progress
) -> ResolvedEnvironment:
    dockerfile, build_args = _dockerfile_recipe(pack)
    built = build_image(
        client, dockerfile.parent, tag_prefix=ENV_PREFIX,
        build_args=build_args, trust=trust, progress=progress,
    )  # fmt: skip
    return ResolvedEnvironment(built.tag, built.id, "built" if built.built else "cached")


def _local(client: docker.DockerClient, key: str) -> Any | None:
    try:
        return client.images.get(key)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot look up image {key}: {e}") from e


def _from_image(
    client: docker.DockerClient, manifest: Manifest, allow_mismatch: bool, progress: Progress
) -> ResolvedEnvironment:
    ref = manifest.environment.image
    assert ref is not None
    how: Provenance = "local"
    image = (_local(client, ref.id) if ref.id else None) or _local(client, ref.reference)
    if image is None:
        progress.step(f"pulling {ref.reference}")
        try:
            image = client.images.pull(ref.reference)
        except docker.errors.DockerException as e:
            raise ImageError(
                f"image {ref.reference} is not here and cannot be pulled ({str(e).strip()[:200]}); "
                "load it with `docker load` or give the engine access to its registry"
            ) from e
        how = "pulled"
    digest = ref.reference.split("@", 1)[1]
    digests = [d.split("@", 1)[-1] for d in image.attrs.get("RepoDigests", [])]
    problems = []
    if ref.id and image.id != ref.id:
        problems.append(f"image id {image.id} differs from the recorded {ref.id}")
    if how == "pulled" and digest not in digests:
        problems.append(f"the registry served digests {digests or 'none'}, not {digest}")
    if problems and not allow_mismatch:
        raise ImageError(
            f"{ref.reference}: {'; '.join(problems)}; refusing to replay in another image "
            "(pass --allow-image-mismatch to replay anyway)"
        )
    warnings = tuple(f"image mismatch allowed by --allow-image-mismatch: {p}" for p in problems)
    return ResolvedEnvironment(image.id, image.id, how, warnings)


def resolve(
    client: docker.DockerClient,
    pack: UnpackedPack,
    *,
    base_image: str,
    trust: BuildTrust | None = None,
    allow_mismatch: bool = False,
    progress: Progress | None = None,
) -> ResolvedEnvironment:
    """The image to replay `pack` in, obtained the way its manifest says."""
    progress = progress or Silent()
    trust = trust or BuildTrust.from_host()
    kind = pack.manifest.environment.kind
    if kind == "image":
        return _from_image(client, pack.manifest, allow_mismatch, progress)
    if kind == "dockerfile":
        return _from_dockerfile(client, pack, trust, progress)
    return _from_snapshot(client, pack, base_image, trust, progress)


def planned_tag(pack: UnpackedPack, base_id: str) -> str | None:
    """The tag `resolve` would build or reuse for `pack` on the base `base_id`; None for a pack that names
    its image (not the runner's to keep or remove)."""
    kind = pack.manifest.environment.kind
    if kind == "image":
        return None
    if kind == "dockerfile":
        dockerfile, build_args = _dockerfile_recipe(pack)
        return tag_for(dockerfile.parent, tag_prefix=ENV_PREFIX, build_args=build_args)
    args, extra, _ = _snapshot_recipe(pack, base_id)
    return tag_for(_SNAPSHOT_DOCKERFILE, tag_prefix=ENV_PREFIX, build_args=args, extra=extra)


def needed_tags(packs: Iterable[Path], base_id: str) -> set[str]:
    """The environment tags these packs use; each is verified first, and a bad one raises PackError."""
    needed: set[str] = set()
    for path in packs:
        with tempfile.TemporaryDirectory(prefix="runner-needs-") as tmp:
            manifest, _ = read_manifest(path)
            members = manifest.integrity.members if manifest.integrity else {}
            env = [name for name in members if name.startswith("env/")]
            unpacked = unpack(path, Path(tmp) / "pack", only=env)
            tag = planned_tag(unpacked, base_id)
        if tag is not None:
            needed.add(tag)
    return needed
