"""The Docker backend: a pack's commands in a hardened workload container beside the proxy sidecar.

Input: a docker client, the runner's base and proxy images, build trust and the sandbox `Limits`. Output:
a `Backend` whose `prepare` resolves the pack's image (`runner.replay.environment`) and whose `start` runs
the proxy sidecar (`runner.replay.sidecar`) and the workload container in its network namespace, yielding a
`DockerSession` that execs the steps' commands (`runner.replay.execute`).

Rules: both containers run in the sandbox `runner.engine.sandbox` describes; the workspace is bind-mounted
at /workspace and lent to the sandbox user while a command runs, whose limits are watched. When a spare
pair of the same workload waits (`runner.replay.spare`), `prepare` claims it and hands its proxy the
cassette, and the workspace is restored into the pair's folder; else the sidecar is a spare one alone or a
new one started without waiting for its proxy, so mitmproxy's start overlaps the workload's and the
workspace's restore. What `prepare` learnt (the claimed pair, whether the cassette holds loopback
exchanges) reaches `start` in the `Prepared`. The proxy is waited for (`ready`) before the first command.
Once the image is known, a detached process is asked to make the next replay's spare pair (of this
image). When the session ends well, a claimed pair is handed to a detached process that removes it and
then its folder (`spare.release`: the replay does not wait for the engine); other containers, and any
after a failure, are removed here, together, with force. Nothing is removed with `keep` (then no spare
is claimed, and the kept workspace is handed to the sandbox user, for a shell in the container). The containers the runner starts for a run carry its folder as a label. The interpreter
probe of an image is cached by image id (an image never changes). The docker SDK's errors during a step
come back as `ExecuteError`s: an engine failure, not a divergence.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from proxy.report import Report
from runner.engine import containers
from runner.engine import sandbox as sandbox_engine
from runner.engine.host import BuildTrust, runner_home
from runner.errors import ExecuteError
from runner.pack.read import UnpackedPack
from runner.progress import Progress
from runner.replay import environment, execute, sidecar, spare
from runner.replay.backends import BackendName, Prepared, Probe, Run, cassette_of, parse_probe, probe_script

__all__ = ["WORKSPACE", "DockerBackend", "DockerSession"]

WORKSPACE = PurePosixPath("/workspace")
_HOME = PurePosixPath("/tmp")  # the sandbox user's HOME (runner.engine.sandbox)


@dataclass(frozen=True)
class DockerBackend:
    client: docker.DockerClient
    base_image: str
    proxy_image: str
    trust: BuildTrust | None = None
    allow_image_mismatch: bool = False
    limits: sandbox_engine.Limits = field(default_factory=sandbox_engine.Limits)
    spares: bool = True  # claim and leave spare sidecars (`runner.replay.spare`); off for --keep

    @property
    def name(self) -> BackendName:
        return "docker"

    @property
    def isolated(self) -> bool:
        return True

    def prepare(self, pack: UnpackedPack, progress: Progress) -> Prepared:
        env = environment.resolve(
            self.client, pack, base_image=self.base_image, trust=self.trust,
            allow_mismatch=self.allow_image_mismatch, progress=progress,
        )  # fmt: skip
        loopback = sidecar.has_loopback(cassette_of(pack))  # read once: `start` has it from the `Prepared`
        claimed = None
        if self.spares and spare.enabled():  # a spare workload of this very image may wait, with its sidecar
            user = sandbox_engine.sandbox_user()
            hardening = self._hardening(user)
            want = _workload_spec(env.image_id, hardening, loopback)
            claimed = spare.claim(self.client, self.proxy_image, user, workload=want)
            if claimed is not None:  # its proxy starts now, while the workspace is restored
                sidecar.hand_claim(claimed.folder, cassette_of(pack), user)
            # The next replay's pair, made meanwhile by a process of its own.
            spare.spawn(self.proxy_image, user, _spare_workload(env.image, env.image_id, hardening))
        return Prepared(f"{env.image} ({env.how})", env.image, env.warnings, loopback, claimed)

    def _hardening(self, user: sandbox_engine.User) -> dict[str, Any]:
        return sandbox_engine.workload_options(self.client, self.limits, user)

    @contextmanager
    def start(
        self, prepared: Prepared, pack: UnpackedPack, workspace: Path, scratch: Path, *, run: Run, keep: bool
    ) -> Iterator[DockerSession]:
        """The sidecar and the workload container, removed when the block ends unless `keep`."""
        labels = {"runner.run": str(run.folder.resolve())}  # so a run's containers can be found
        user = sandbox_engine.sandbox_user()
        cassette = cassette_of(pack)
        with ExitStack() as stack:
            # The pair `prepare` claimed, when the workspace was restored into its folder.
            claimed = prepared.claimed if workspace == prepared.workspace else None
            if claimed is not None:
                # After the containers, when the session failed (else `release` moved the folder away).
                stack.callback(shutil.rmtree, claimed.folder, ignore_errors=True)
                spare.adopt(claimed)
            proxy = stack.enter_context(
                sidecar.serve_cassettes(
                    self.client,
                    self.proxy_image,
                    cassette,
                    scratch / "proxy",
                    labels=labels,
                    user=user,
                    wait=False,
                    # A kept sidecar keeps its files in the kept scratch folder.
                    claim=self.spares and not keep,
                    claimed=claimed,
                    route_loopback=prepared.route_loopback,
                )
            )
            if claimed is not None and claimed.workload is not None:
                workload = stack.enter_context(containers.adopted(claimed.workload))
            else:
                workload = stack.enter_context(
                    _workload(
                        self.client,
                        prepared.handle,
                        proxy,
                        workspace,
                        {**labels, "runner.pack": run.pack},
                        self._hardening(user),
                    )
                )
            if keep:  # the caller prints how to get a shell; nothing is removed
                containers.keep(workload)
                containers.keep(proxy.container)
            sandbox = sandbox_engine.describe(self.limits, user)
            watch = sandbox_engine.LimitWatch(workload, self.limits)
            yield DockerSession(workload, proxy, workspace, self.limits, user, sandbox, watch)
            if keep:  # the kept workspace is the sandbox user's, for a shell in the container
                sandbox_engine.hand_over(workspace, user)
            elif claimed is not None:  # removed by a process of its own: the replay does not wait for it
                spare.release(self.client, claimed)
            else:
                containers.remove(workload, proxy.container)  # together, and before the spare is waited for


def _workload_spec(image_id: str, hardening: dict[str, Any], loopback: bool) -> str:
    """What a spare workload must match to serve as a replay's: image id, hardening, environment."""
    what = {"image": image_id, "options": hardening, "env": sidecar.workload_env(loopback)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _spare_workload(image: str, image_id: str, hardening: dict[str, Any]) -> spare.SpareWorkload:
    """A spare workload of `image` beside the next spare sidecar (see `runner.replay.spare`)."""
    options = dict(hardening)
    options["environment"] = {**options.pop("environment", {}), **sidecar.workload_env(False)}
    options["working_dir"] = str(WORKSPACE)
    spec = _workload_spec(image_id, hardening, False)
    return spare.SpareWorkload(spec, image, options, str(WORKSPACE), str(sidecar.CA_IN_WORKLOAD.parent))


def _workload(
    client: docker.DockerClient,
    image: str,
    proxy: sidecar.Sidecar,
    workspace: Path,
    labels: dict[str, str],
    hardening: dict[str, Any],
) -> AbstractContextManager[Container]:
    """The container the steps run in: idle until they exec into it, in the sidecar's network namespace,
    under the sandbox's user, privileges and limits (`hardening`)."""
    hardening = dict(hardening)
    return containers.started(
        client,
        image,
        name_prefix="runner-workload",
        command=["sleep", "infinity"],
        init=True,
        network_mode=proxy.network_mode,
        environment={**hardening.pop("environment", {}), **proxy.workload_env()},
        working_dir=str(WORKSPACE),
        volumes={
            str(workspace.resolve()): {"bind": str(WORKSPACE), "mode": "rw"},
            **proxy.workload_volumes(),
        },
        extra_labels={**labels, "runner.role": "workload"},
        **hardening,
    )


@dataclass(frozen=True)
class DockerSession:
    container: Container
    proxy: sidecar.Sidecar
    host_workspace: Path
    limits: sandbox_engine.Limits
    user: sandbox_engine.User
    sandbox: str
    watch: sandbox_engine.LimitWatch  # one for the session's steps: it learns the container's pid once
    warnings: tuple[str, ...] = ()

    @property
    def workspace(self) -> PurePosixPath:
        return WORKSPACE

    @property
    def home(self) -> PurePosixPath:
        return _HOME

    @property
    def relocated(self) -> PurePosixPath:
        return _HOME / "runner-agent-files"  # the read-only image refuses most absolute paths

    def run(
        self, argv: list[str], *, workdir: str, env: dict[str, str], timeout: float, log_dir: Path, name: str
    ) -> execute.CommandRun:
        """One command in the sandbox: the workspace lent to its user, its limits watched while it runs."""
        try:
            watch = self.watch
            watch.start()
            with sandbox_engine.lend(self.host_workspace, self.user):
                return execute.run_command(
                    self.container, argv, workdir=workdir, env=env, timeout=timeout, log_dir=log_dir,
                    name=name, watch=watch.check,
                )  # fmt: skip
        except docker.errors.DockerException as e:
            raise ExecuteError(f"Docker engine error while running `{' '.join(argv)[:200]}`: {e}") from e

    def copy_in(self, source: Path, target: PurePosixPath) -> bool:
        """Copy a file of the workspace folder to `target` in the container, as the sandbox user."""
        inside = WORKSPACE / source.relative_to(self.host_workspace)
        script = 'mkdir -p "$(dirname "$2")" && cp "$1" "$2"'
        result = self.run(
            ["sh", "-c", script, "sh", str(inside), str(target)], workdir=str(WORKSPACE), env={}, timeout=60,
            log_dir=source.parent / "logs", name="copy",
        )  # fmt: skip
        return result.exit_code == 0

    def _exec(self, argv: list[str]) -> Any:
        try:
            return self.container.exec_run(argv)
        except docker.errors.DockerException as e:
            raise ExecuteError(f"Docker engine error while running `{' '.join(argv)[:200]}`: {e}") from e

    def exists(self, path: PurePosixPath) -> bool:
        return bool(self._exec(["test", "-e", str(path)]).exit_code == 0)

    def probe(self) -> Probe | None:
        """The image's interpreter, asked once per image id and script, then read from the cache."""
        script = probe_script(environment.FAILED_LIST)
        image = str(self.container.attrs.get("Image") or "").removeprefix("sha256:")
        key = hashlib.sha256(f"{image}\n{script}".encode()).hexdigest()[:32]
        cached = runner_home() / "probes" / f"{key}.json"
        if image:
            with suppress(OSError, ValueError, KeyError, TypeError):
                return parse_probe(cached.read_text(encoding="utf-8"))
        result = self._exec(["python3", "-c", script])
        if result.exit_code != 0:
            return None
        output = result.output.decode("utf-8", "replace")
        found = parse_probe(output)
        if image:
            with suppress(OSError):
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(output.strip().splitlines()[-1], encoding="utf-8")
                os.replace(tmp, cached)
        return found

    def ready(self) -> None:
        self.proxy.wait_ready()  # mitmproxy started while the workload did and the workspace was restored

    def finish(self) -> Report:
        return self.proxy.finish()

    def kept(self) -> str:
        name = self.container.name
        return (
            f"kept: `docker exec -it {name} bash` (workspace {self.host_workspace}); "
            f"remove with `docker rm -f {name} {self.proxy.container.name}`"
        )
