"""The local backend: a pack's commands on this machine, in a cached virtualenv and a network namespace.

Input: build trust and whether isolation may be skipped (`--no-isolation`). Output: a `Backend` whose
`prepare` makes the pack's virtualenv (`backends.venv`) and lists what this machine cannot reproduce, and
whose `start` opens the namespace (`backends.netns`), runs the runner's own mitmproxy with the cassette addon
in it (`runner.cassettes.process`, the same arguments as the sidecar's) and yields a `LocalSession`.

Rules: commands run with the workspace restored in the replay's private temporary folder, HOME and TMPDIR
there too, the virtualenv first on PATH, the proxy and its CA in the environment, and nothing else of the
runner's environment (no secrets of the host pass on). Each command runs in its own session and process
group; at its timeout the group and every descendant are killed; when the session ends (success, error,
Ctrl-C) every process left in the namespace is killed with the proxy and the namespace. A file the re-run
agent wants back outside HOME is refused (the host's files are not the replay's to write) and relocated.
What the host cannot reproduce is a warning: another OS or architecture, another Python, a pack that names a
Docker image, recorded runtimes or commands this machine lacks. No memory or process limits apply here.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from proxy.report import Report
from runner.cassettes.process import ProxyProcess, ProxySettings
from runner.cassettes.tls import client_trust_env
from runner.engine.host import BuildTrust
from runner.errors import ProxyError
from runner.pack.manifest import CommandStep, Manifest
from runner.pack.read import UnpackedPack
from runner.progress import Progress
from runner.replay import environment
from runner.replay.backends import BackendName, Prepared, Probe, Run, cassette_of, parse_probe, probe_script
from runner.replay.backends import venv as venv_stage
from runner.replay.backends.docker import WORKSPACE
from runner.replay.backends.netns import Namespace, private_network
from runner.replay.execute import CommandRun, descendants
from runner.replay.sidecar import has_loopback

__all__ = ["LocalBackend", "LocalSession"]

_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_BASE_PROGRAMS = ("git", "patch", "curl")  # what the Docker base image offers every pack


@dataclass(frozen=True)
class LocalBackend:
    trust: BuildTrust = field(default_factory=BuildTrust.from_host)
    no_isolation: bool = False

    @property
    def name(self) -> BackendName:
        return "local"

    @property
    def isolated(self) -> bool:
        return not self.no_isolation

    def prepare(self, pack: UnpackedPack, progress: Progress) -> Prepared:
        m = pack.manifest
        snap = m.environment.snapshot
        python, version, warnings = venv_stage.interpreter(snap.python if snap else None)
        pins: list[str] = []
        if snap is not None:
            pins, skipped = environment.snapshot_requirements(pack)
            warnings += skipped + environment.snapshot_warnings(pack.path, "the replay virtualenv")
        else:
            what = m.environment.image.reference if m.environment.image else "its Dockerfile"
            warnings.append(
                f"the pack names a Docker image ({what}); the local backend runs this machine's system"
            )
        warnings += _host_drift(m)
        env = venv_stage.ensure(pins, python, version, self.trust, progress)
        return Prepared(
            f"{env.path} ({'built' if env.built else 'cached'})", str(env.path), tuple(warnings),
            route_loopback=has_loopback(cassette_of(pack)),
        )  # fmt: skip

    @contextmanager
    def start(
        self, prepared: Prepared, pack: UnpackedPack, workspace: Path, scratch: Path, *, run: Run, keep: bool
    ) -> Iterator[LocalSession]:
        for folder in ("home", "tmp", "relocated", "root"):
            (scratch / folder).mkdir(exist_ok=True)
        cassette = cassette_of(pack)
        if cassette is None:  # no recording: every request is a miss, and still nothing leaves
            cassette = scratch / "empty.jsonl"
            cassette.touch()
        warnings: list[str] = []
        with private_network(self.no_isolation) as namespace:
            shown = namespace.show(workspace, WORKSPACE, scratch / "root")
            if not isinstance(shown, PurePosixPath):
                warnings.append(f"the workspace is at {workspace}, not {WORKSPACE}: {shown}")
                shown = PurePosixPath(workspace.resolve())
            proxy = _NamespacedProxy(ProxySettings("replay", cassette, scratch / "proxy"), namespace)
            with proxy.starting():
                session = LocalSession(
                    Path(prepared.handle),
                    workspace,
                    shown,
                    scratch,
                    namespace,
                    proxy,
                    prepared.route_loopback,
                    tuple(warnings),
                )
                try:
                    yield session
                finally:
                    session.kill_all()


class _NamespacedProxy(ProxyProcess):
    """The proxy program (proxy/main.py: mitmproxy with the cassette addon), started inside the namespace
    without waiting for it (`wait_ready()` before the first command: mitmproxy takes a second or two to
    import itself). It binds its own port: one bound here would be in the host's network namespace, not
    the replay's."""

    hand_over_socket = False

    def __init__(self, settings: ProxySettings, namespace: Namespace) -> None:
        super().__init__(settings)
        self.namespace = namespace

    def command(self) -> list[str]:
        return self.namespace.enter(super().command())[0]

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Start the proxy without waiting for it; stopped when the block ends."""
        try:
            self.start(wait=False)
            yield
        finally:
            self.stop()


@dataclass
class LocalSession:
    venv: Path
    host_workspace: Path
    workspace: PurePosixPath  # where the commands see it: /workspace as in a container, when it could be had
    scratch: Path
    namespace: Namespace
    proxy: _NamespacedProxy
    route_loopback: bool
    warnings: tuple[str, ...] = ()
    _groups: set[int] = field(default_factory=set)

    @property
    def home(self) -> PurePosixPath:
        return PurePosixPath((self.scratch / "home").resolve())

    @property
    def relocated(self) -> PurePosixPath:
        return PurePosixPath((self.scratch / "relocated").resolve())

    @property
    def sandbox(self) -> str:
        return f"local: {self.namespace.how}; this machine's user and files; no memory or process limits"

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        assert self.proxy.ca is not None
        env = {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(self.venv),
            "HOME": str(self.home),
            "TMPDIR": str((self.scratch / "tmp").resolve()),
            "LANG": "C.UTF-8",
            **client_trust_env(self.proxy.ca.cert_path, self.proxy.url),
        }
        if self.route_loopback:
            env["NO_PROXY"] = env["no_proxy"] = ""
        return {**env, **extra}

    def run(
        self, argv: list[str], *, workdir: str, env: dict[str, str], timeout: float, log_dir: Path, name: str
    ) -> CommandRun:
        log_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
        started = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            command, cwd = self.namespace.enter(argv, workdir)
            try:
                proc = subprocess.Popen(
                    command, cwd=cwd, env=self._env(env), stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )  # fmt: skip
            except OSError as e:  # no such program, as a shell would say: exit 127
                err.write(f"{argv[0]}: {e.strerror}\n".encode())
                return CommandRun(127, out_path, err_path, time.monotonic() - started, False)
            self._groups.add(proc.pid)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                return CommandRun(None, out_path, err_path, time.monotonic() - started, True)
            finally:
                _kill_group(proc.pid)  # what it left running in the background goes with it
                self._groups.discard(proc.pid)
        code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
        return CommandRun(code, out_path, err_path, time.monotonic() - started, False)

    def copy_in(self, source: Path, target: PurePosixPath) -> bool:
        """Put a file back under HOME or the relocation folder; anywhere else on the host is refused."""
        dest = Path(target)
        scratch = self.scratch.resolve()
        if not Path(os.path.normpath(dest)).is_relative_to(scratch):
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.parent.resolve().is_relative_to(scratch):  # a symlink planted on the way
            return False
        shutil.copyfile(source, dest, follow_symlinks=False)
        return True

    def exists(self, path: PurePosixPath) -> bool:
        return Path(path).exists()

    def probe(self) -> Probe | None:
        python = self.venv / "bin" / "python"
        script = probe_script(str(self.venv / venv_stage.FAILED))
        proc = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=False)
        return parse_probe(proc.stdout) if proc.returncode == 0 else None

    def ready(self) -> None:
        self.proxy.wait_ready()

    def finish(self) -> Report:
        report = self.proxy.stop()
        if report is None:
            raise ProxyError(f"the cassette proxy wrote no report; see {self.proxy.log_path}")
        return report

    def kept(self) -> str:
        return f"kept: workspace {self.host_workspace}, virtualenv {self.venv} (the proxy has stopped)"

    def kill_all(self) -> None:
        for group in list(self._groups):
            _kill_group(group)
        self._groups.clear()


def _kill_group(pid: int) -> None:
    """Kill the process group `pid` leads and every descendant of `pid` (a daemon's own session included)."""
    for child in reversed(descendants(pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _host_drift(manifest: Manifest) -> list[str]:
    """What this machine lacks of the recording: OS, architecture, runtimes, commands the steps run."""
    warnings: list[str] = []
    snap = manifest.environment.snapshot
    if snap is not None:
        try:
            here = platform.freedesktop_os_release().get("PRETTY_NAME", "")
        except OSError:
            here = platform.system()
        if snap.os and here and snap.os != here:
            warnings.append(f"{snap.os} was recorded, this machine runs {here}")
        arch = platform.machine()
        if snap.arch and _ARCH.get(snap.arch, snap.arch) != _ARCH.get(arch, arch):
            warnings.append(f"{snap.arch} was recorded, this machine is {arch}")
    node = manifest.environment.runtimes.get("node")
    if node is not None and shutil.which("node") is None:
        warnings.append(f"node {node} was recorded; this machine has no node")
    programs = {s.argv[0] for s in manifest.steps if isinstance(s, CommandStep) and s.argv}
    for program in sorted(programs | set(_BASE_PROGRAMS)):
        if "/" not in program and program not in {"python", "python3"} and shutil.which(program) is None:
            warnings.append(f"`{program}` is not installed on this machine")
    return warnings
