"""The replay backend seam: where a pack's commands run, behind one small protocol.

Input: a backend name (`docker`, `local` or `auto`). Output: a `Choice` (`select`) naming the backend that
will run and why; the `Backend` it builds prepares a pack's environment (`prepare`) and starts a `Session`
(`start`, with the workspace's empty folder, which the pipeline fills meanwhile; `ready` before the first
command): the cassette proxy plus a `Workload` that runs a command with cwd, environment, timeout and log
files, copies a file in, tells whether a path exists and probes the interpreter. The pipeline, comparisons,
verdicts and reports are shared by every backend; only this seam differs.

Rules: `docker` is today's containers (`backends.docker`), `local` a virtualenv and a network namespace on
this machine (`backends.local`). `auto` is Docker when an engine answers (`runner.engine.daemon.connect`),
else local, and says which. A backend never decides a verdict: it returns what ran, and infrastructure
failures as `RunnerError`s.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from proxy.report import Report
from runner.errors import EngineError, UsageError
from runner.pack.manifest import Manifest
from runner.pack.read import UnpackedPack
from runner.progress import Progress
from runner.replay.execute import CommandRun

if TYPE_CHECKING:
    from runner.replay.spare import Claimed  # it pulls in the docker SDK, which the seam does not need

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "Choice",
    "Prepared",
    "Probe",
    "Run",
    "Session",
    "Workload",
    "cassette_of",
    "drift",
    "parse_probe",
    "probe_script",
    "select",
]

BackendName = Literal["docker", "local"]
BACKENDS = ("docker", "local", "auto")


@dataclass(frozen=True)
class Probe:
    """What the environment's interpreter says about itself: its version and the packages that did not
    install (one `name==version` a line in the environment's failed list)."""

    python: str
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    """Which run a session belongs to: the pack's file name and the run's folder."""

    pack: str
    folder: Path


@dataclass(frozen=True)
class Prepared:
    """A pack's environment, ready: what to show (`<ref> (<how>)`), its handle for `start`, warnings."""

    shown: str
    handle: str  # the image (docker) or the virtualenv folder (local)
    warnings: tuple[str, ...] = ()
    route_loopback: bool = False  # the cassette holds loopback exchanges: those go to the proxy too
    claimed: Claimed | None = None  # a spare pair claimed for this replay (docker)

    @property
    def workspace(self) -> Path | None:
        """Where to restore the workspace: a claimed spare pair's folder; None: the caller's."""
        return self.claimed.workspace if self.claimed is not None else None


def cassette_of(pack: UnpackedPack) -> Path | None:
    """The pack's cassette (the first), unpacked; None when it recorded none."""
    return pack.path / pack.manifest.cassettes[0].path if pack.manifest.cassettes else None


def probe_script(failed_list: str) -> str:
    """The Python one-liner printing a `Probe` as JSON, reading the failed list at `failed_list`."""
    return (
        f"import json, platform, pathlib; f = pathlib.Path({failed_list!r});"
        "print(json.dumps({'python': platform.python_version(),"
        " 'failed': f.read_text().split() if f.exists() else []}))"
    )


def parse_probe(output: str) -> Probe:
    data: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return Probe(str(data["python"]), tuple(str(f) for f in data["failed"]))


class Workload(Protocol):
    """Where the steps run. Paths are as the commands see them."""

    @property
    def workspace(self) -> PurePosixPath: ...  # the restored workspace

    @property
    def home(self) -> PurePosixPath: ...  # where the agent's `~/` files go back

    @property
    def relocated(self) -> PurePosixPath: ...  # where a file whose recorded path is refused goes instead

    def run(
        self, argv: list[str], *, workdir: str, env: dict[str, str], timeout: float, log_dir: Path, name: str
    ) -> CommandRun: ...

    def copy_in(self, source: Path, target: PurePosixPath) -> bool: ...

    def exists(self, path: PurePosixPath) -> bool: ...

    def probe(self) -> Probe | None: ...  # None: no python3 there


class Session(Workload, Protocol):
    """A started workload and its cassette proxy."""

    @property
    def sandbox(self) -> str: ...  # what the commands run under, in words

    @property
    def warnings(self) -> tuple[str, ...]: ...  # what starting it could not reproduce

    def ready(self) -> None: ...  # wait for the proxy to listen: before the first command

    def finish(self) -> Report: ...  # stop the proxy; its report

    def kept(self) -> str: ...  # how to get at a kept run (--keep), in one line


class Backend(Protocol):
    @property
    def name(self) -> BackendName: ...

    @property
    def isolated(self) -> bool: ...  # False: commands reach the host's network (local --no-isolation)

    def prepare(self, pack: UnpackedPack, progress: Progress) -> Prepared: ...

    def start(
        self, prepared: Prepared, pack: UnpackedPack, workspace: Path, scratch: Path, *, run: Run, keep: bool
    ) -> AbstractContextManager[Session]: ...


@dataclass(frozen=True)
class Choice:
    name: BackendName
    client: Any | None  # the docker client, for `docker`
    note: str  # why this backend, for the terminal


def select(name: str) -> Choice:
    """The backend `name` asks for; `auto`: Docker when an engine answers, else local."""
    from runner.engine import daemon  # it pulls in the docker SDK, which the seam's types do not need

    if name not in BACKENDS:
        raise UsageError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    if name == "local":
        return Choice("local", None, "backend: local (virtualenv + network namespace)")
    try:
        client = daemon.connect(timeout=10 if name == "auto" else 30)
    except EngineError as e:
        if name == "docker":
            raise EngineError(f"{e}; or replay without Docker: --backend local") from e
        return Choice("local", None, f"backend: local, since no Docker engine answers at {daemon.address()}")
    return Choice("docker", client, "backend: docker")


def drift(probe: Probe | None, manifest: Manifest, where: str) -> list[str]:
    """What the environment (`where`: "the replay image", "the virtualenv") cannot reproduce exactly:
    interpreter version, packages that did not install."""
    snap = manifest.environment.snapshot
    if snap is None:
        return []
    if probe is None:
        return [f"python3 is not available in {where}; recorded Python commands will fail"]
    warnings = [f"package {req} did not install in {where}" for req in probe.failed]
    if probe.python != snap.python:
        warnings.insert(0, f"Python {snap.python} was recorded, {where} has {probe.python}")
    return warnings
