"""Proxy sidecar containers on a folder: started for one replay, or ahead, as a spare the next replay claims.

Input: a docker client, the proxy image, the sandbox user. Output: `options` (the `docker run` keywords of
a sidecar running `proxy.claim` on a host folder mounted at /data, for a fresh sidecar and a spare alike),
`claim` (a waiting spare taken for one replay, or None), `adopt` (a claimed pair, kept on), `release`
(a claimed pair, removed), `start_spare` (one started for the next replay, unless one waits already),
`spawn` (`start_spare` in a detached process at a low priority, `python -m runner.replay.spare`, so no
replay waits for it) and `sweep` (what expired, removed).

Rules:
- A spare is a new container that has served nothing: mitmproxy imported and waiting for its claim
  (`proxy.claim`), network `none`, hardened like every sidecar, with a fresh CA of its own, at the
  engine's lowest CPU weight until claimed (its start must not slow the replay running meanwhile), labelled
  `runner.role=spare` and `runner.spare-spec`: a hash of the proxy image's id, the sandbox user, the
  hardening and this protocol's version. A replay claims only a spare of its own spec; others expire.
- Its folder lives under `$RUNNER_HOME/spares` (default ~/.cache/runner/spares): in `staging/` while the
  spare starts, `ready/` once it waits, `claimed/` once a replay took it, `released/` once that replay is
  done with it. Claiming is the atomic rename of the folder from ready/ to claimed/: of two replays only
  one gets a spare, the other starts its own sidecar, so a sidecar never serves two replays, and a pack
  cannot reach the next replay's proxy. `release` hands a claimed pair to a detached process that
  removes its containers, then its folder (the replay does not wait for the engine); a released folder
  still there a minute later is removed, containers first, by the next `sweep`.
- A spare may come with a spare workload: a container of the image the last replay used, joined to the
  spare's network namespace, with a workspace folder of its own (`workspace/`, mounted at /workspace) and
  the spare's CA (`ca/`, read-only at /runner/ca). A replay whose workload would be the same (image id,
  hardening, environment: the `spec` its caller computes) claims the pair (`claim(..., workload=spec)`)
  and restores its workspace there; a replay that claims only the sidecar removes the spare workload.
  The workload sleeps as long as the sidecar waits, then stays only if `ca/claimed` exists (`adopt`
  writes it), so an unclaimed one exits and is removed by the engine too.
- A spare waits `RUNNER_SPARE_PROXY_IDLE` seconds (default 300), then exits and the engine removes it
  (auto-remove); `sweep` removes the folders of spares gone. A spare within 30 s of its end is not
  claimed. `RUNNER_SPARE_PROXY=0` turns spares off: each replay then starts its own sidecar, as the
  first replay on a machine always does. A spare is only ever a speed-up: failing to start or claim one
  is logged, never an error of the replay.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from runner.cassettes.tls import make_ca
from runner.engine.containers import ROLE_LABEL, SPARE_ROLES, disown
from runner.engine.containers import labels as owner_labels
from runner.engine.host import runner_home
from runner.engine.sandbox import User, hand_over, sidecar_options

if TYPE_CHECKING:
    from docker.models.containers import Container

__all__ = [
    "DATA",
    "ENABLED_ENV",
    "IDLE_ENV",
    "WORKLOAD_SPEC_LABEL",
    "Claimed",
    "SpareWorkload",
    "adopt",
    "claim",
    "enabled",
    "options",
    "release",
    "root",
    "spawn",
    "start_spare",
    "sweep",
    "workload_command",
]

ENABLED_ENV = "RUNNER_SPARE_PROXY"
IDLE_ENV = "RUNNER_SPARE_PROXY_IDLE"
DATA = PurePosixPath("/data")  # the sidecar's folder, as the container sees it
_PROTOCOL = 1  # bump when what a spare expects of its claim changes
_IDLE = 300.0
_MARGIN = 30.0  # seconds a claimed spare must still have before it would give up
_SPEC_LABEL = "runner.spare-spec"
_IDLE_SHARES, _CLAIMED_SHARES = 2, 1024  # the engine's least and its default CPU weight
_WAIT = 5.0  # seconds a replay waits for a spare being made (a new sidecar takes longer to be ready)
WORKLOAD_SPEC_LABEL = "runner.spare-workload-spec"  # set by the caller's `SpareWorkload.start`
_INFO = "spare.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    container: Container
    folder: Path  # under claimed/: the replay writes its claim here, the proxy its report
    workload: Container | None = None  # the spare workload in its namespace, when one was claimed with it

    @property
    def workspace(self) -> Path:
        return self.folder / "workspace"


@dataclass(frozen=True)
class SpareWorkload:
    """A spare workload to start beside a spare sidecar: its `spec` (what a claim must match), its image,
    the `docker run` keywords of its sandbox (hardening, environment, working folder), and where it sees
    its workspace folder and the sidecar's CA."""

    spec: str
    image: str
    options: dict[str, Any]
    workspace_at: str
    ca_at: str

    def start(
        self, client: docker.DockerClient, sidecar: Container, folder: Path, idle: float, name: str
    ) -> Any:
        role = {ROLE_LABEL: SPARE_ROLES[1], WORKLOAD_SPEC_LABEL: self.spec}
        return client.containers.run(
            self.image, workload_command(idle), name=name, detach=True, auto_remove=True, init=True,
            network_mode=f"container:{sidecar.id}", labels=owner_labels(role),
            volumes={
                str((folder / "workspace").resolve()): {"bind": self.workspace_at, "mode": "rw"},
                str((folder / "ca").resolve()): {"bind": self.ca_at, "mode": "ro"},
            },
            **self.options,
        )  # fmt: skip


def workload_command(idle: float) -> list[str]:
    """The spare workload's command: idle as long as its sidecar waits, then on only once claimed."""
    script = 'sleep "$1"; test -e /runner/ca/claimed && exec sleep infinity'
    return ["sh", "-c", script, "sh", f"{idle:g}"]


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in {"0", "off", "no", "false"}


def _idle() -> float:
    try:
        return max(10.0, float(os.environ.get(IDLE_ENV, _IDLE)))
    except ValueError:
        return _IDLE


def root() -> Path:
    return runner_home() / "spares"


def options(
    proxy_image: str, folder: Path, user: User, *, idle: float, extra_labels: dict[str, str]
) -> dict[str, Any]:
    """`containers.create` keywords of a sidecar running `proxy.claim` on `folder` (mounted at /data)."""
    hardening = sidecar_options(user)
    return {
        "image": proxy_image,
        "command": ["python3", "-m", "proxy.claim", str(DATA), f"{idle:g}"],
        "environment": {**hardening.pop("environment"), "PYTHONUNBUFFERED": "1"},
        "volumes": {str(folder.resolve()): {"bind": str(DATA), "mode": "rw"}},
        "network_mode": "none",
        "labels": owner_labels(extra_labels),
        **hardening,
    }


def _spec(client: docker.DockerClient, proxy_image: str, user: User) -> str:
    image_id = client.images.get(proxy_image).id
    what = {"image": image_id, "user": str(user), "options": sidecar_options(user), "protocol": _PROTOCOL}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _info(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / _INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def claim(
    client: docker.DockerClient, proxy_image: str, user: User, *, workload: str | None = None
) -> Claimed | None:
    """A waiting spare of this image and user, now this replay's alone; None when there is none. With
    `workload` (a `SpareWorkload.spec`) only a spare whose workload matches it, claimed with it; without,
    a spare workload is removed (in the background: it would expire anyway)."""
    if not enabled():
        return None
    want: str | None = None
    deadline = time.monotonic() + _WAIT
    while True:
        # Staging is looked at before ready: a spare moving from one to the other in between is seen in
        # ready, rather than missed by both looks (the replay would start a sidecar of its own).
        making = _being_made(workload)
        names = _names(root() / "ready")
        if names and want is None:
            try:
                want = _spec(client, proxy_image, user)
            except docker.errors.DockerException as e:
                log.info("no spare proxy sidecar: %s", e)
                return None
        if want is not None:
            found = _claim_ready(client, names, want, workload)
            if found is not None:
                return found
        # One being made is ready sooner than a new one could start: wait for it, a while.
        if time.monotonic() > deadline or not making:
            return None
        time.sleep(0.02)


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _being_made(workload: str | None) -> bool:
    """Whether a spare (with this workload, when given) is starting, recently enough to be waited for."""
    staging = root() / "staging"
    for name in _names(staging):
        info = _info(staging / name)
        try:
            young = time.time() - (staging / name).stat().st_mtime < _WAIT
        except OSError:
            continue
        if young and (workload is None or info.get("workload_spec") == workload):
            return True
    return False


def _claim_ready(
    client: docker.DockerClient, names: list[str], want: str, workload: str | None
) -> Claimed | None:
    ready = root() / "ready"
    (root() / "claimed").mkdir(parents=True, exist_ok=True)
    for name in names:
        info = _info(ready / name)
        if info.get("spec") != want or float(info.get("expires", 0)) - time.time() < _MARGIN:
            continue  # another version's, or about to give up: left to expire
        if workload is not None and info.get("workload_spec") != workload:
            continue
        mine = root() / "claimed" / name
        try:
            os.rename(ready / name, mine)  # the claim: only one replay's rename succeeds
        except OSError:
            continue
        found = _adopted(client, mine, want, workload)
        if found is not None:
            return found
        _discard(client, mine)
    return None


def adopt(claimed: Claimed) -> None:
    """The pair `claim(..., workload=...)` returned (its containers found running then), now kept on:
    its workload stays past its idle time."""
    (claimed.folder / "ca" / "claimed").touch()


def release(client: docker.DockerClient, claimed: Claimed) -> None:
    """The replay is done with its claimed spare: the pair is removed, then its folder, by a detached
    process (the replay does not wait for the engine to stop them); here, waiting, when that process
    cannot start. The folder moves to released/ first, where `sweep` finds it if that process failed."""
    folder = root() / "released" / claimed.folder.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.rename(claimed.folder, folder)  # the containers keep their mounts: a rename moves no file
    disown(*(c for c in (claimed.container, claimed.workload) if c is not None))
    if not _detach({"release": str(folder)}):
        _discard(client, folder)


def _adopted(client: docker.DockerClient, folder: Path, want: str, workload: str | None) -> Claimed | None:
    info = _info(folder)
    container = _running(client, str(info.get("id", "")), want)
    if container is None:
        return None
    try:
        container.update(cpu_shares=_CLAIMED_SHARES)  # a claimed proxy runs as any sidecar does
    except docker.errors.DockerException:
        return None
    spare_workload = str(info.get("workload", ""))
    if workload is None:
        if spare_workload:  # not this replay's: it goes (or expires), and the sidecar alone is claimed
            _write_info(folder, {k: v for k, v in info.items() if k not in ("workload", "workload_spec")})
            threading.Thread(target=_remove, args=(client, spare_workload), daemon=True).start()
        return Claimed(container, folder)
    found = _running(client, spare_workload, workload, label=WORKLOAD_SPEC_LABEL)
    return Claimed(container, folder, found) if found is not None else None


def _running(
    client: docker.DockerClient, container_id: str, want: str, label: str = _SPEC_LABEL
) -> Container | None:
    if not container_id:
        return None
    try:
        container = client.containers.get(container_id)
    except docker.errors.DockerException:
        return None
    if container.status != "running" or container.labels.get(label) != want:
        return None
    return container


def _remove(client: docker.DockerClient, container_id: str) -> None:
    if container_id:
        with suppress(docker.errors.DockerException):
            client.containers.get(container_id).remove(force=True)


def _discard(client: docker.DockerClient, folder: Path) -> None:
    info = _info(folder)
    for key in ("workload", "id"):
        _remove(client, str(info.get(key, "")))
    shutil.rmtree(folder, ignore_errors=True)


def start_spare(
    client: docker.DockerClient, proxy_image: str, user: User, workload: SpareWorkload | None = None
) -> None:
    """Start a spare sidecar for the next replay (with a spare `workload` beside it when given), unless
    one of this spec waits already."""
    if not enabled():
        return
    staging: Path | None = None
    info: dict[str, Any] = {}
    try:
        sweep(client)
        want = _spec(client, proxy_image, user)
        ready = root() / "ready"
        ready.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(ready):
            info = _info(ready / name)
            if info.get("spec") == want and float(info.get("expires", 0)) - time.time() > _MARGIN:
                return
        if _being_made(None):  # by another replay's maker, just now
            return
        name = f"runner-spare-{secrets.token_hex(4)}"
        staging = root() / "staging" / name
        staging.mkdir(parents=True)
        # Said at once, so that a replay starting meanwhile waits for this spare rather than start its own.
        _write_info(staging, {"spec": want, "workload_spec": workload.spec if workload else None})
        make_ca(staging / "confdir")  # this sidecar's own CA, made now rather than while a replay waits
        hand_over(staging, user)
        idle = _idle()
        labels = {ROLE_LABEL: SPARE_ROLES[0], _SPEC_LABEL: want}
        settings = options(proxy_image, staging, user, idle=idle, extra_labels=labels)
        # The lowest CPU weight while it waits: its mitmproxy import takes only CPU the replays leave idle.
        container = client.containers.create(name=name, auto_remove=True, cpu_shares=_IDLE_SHARES, **settings)
        info = {"id": container.id or "", "spec": want, "expires": time.time() + idle, "image": proxy_image}
        _write_info(staging, {**info, "workload_spec": workload.spec if workload else None})
        container.start()
        if workload is not None:
            (staging / "workspace").mkdir()  # the runner's, like any workspace it restores
            (staging / "ca").mkdir()
            shutil.copyfile(staging / "confdir" / "mitmproxy-ca-cert.pem", staging / "ca" / "ca.pem")
            started = workload.start(
                client, container, staging, idle, name.replace("spare", "spare-workload")
            )
            info = {**info, "workload": started.id or "", "workload_spec": workload.spec}
            _write_info(staging, info)
        os.rename(staging, ready / name)
    except Exception as e:  # a spare only saves time: whatever failed, the next replay starts its own
        log.info("no spare proxy sidecar started: %s", e)
        if staging is not None and staging.exists():
            _discard(client, staging)


def _write_info(folder: Path, info: dict[str, Any]) -> None:
    tmp = folder / f".{_INFO}.tmp"
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, folder / _INFO)


def sweep(client: docker.DockerClient) -> None:
    """Remove the folders of spares that expired or whose container is gone, and their containers."""
    now = time.time()
    for state in ("staging", "ready", "claimed", "released"):
        try:
            folders = list((root() / state).iterdir())
        except OSError:
            continue
        for folder in folders:
            info = _info(folder)
            expired = state == "ready" and float(info.get("expires", 0)) < now
            try:
                young = now - folder.stat().st_mtime < 60  # a spare starting, or a claim being written
            except OSError:
                continue
            # A pair lives as long as both do: a pair claimed by a replay that died before it started
            # loses its workload at the idle time (no `claimed` mark), and then its sidecar goes too.
            workload = str(info.get("workload", ""))
            alive = _exists(client, str(info.get("id", ""))) and (not workload or _exists(client, workload))
            if expired or (not young and (state == "released" or not alive)):
                _discard(client, folder)


def _exists(client: docker.DockerClient, container_id: str) -> bool:
    if not container_id:
        return False
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    except docker.errors.DockerException:
        return True  # unknown: keep it
    return True


def spawn(proxy_image: str, user: User, workload: SpareWorkload | None) -> None:
    """`start_spare` in a process of its own, detached and at a low priority: the replay that asks for it
    neither waits for it nor competes much with it for CPU, and a Ctrl-C of that replay does not cut
    it short halfway (it finishes, and its spare expires like any other)."""
    if not enabled():
        return
    job: dict[str, Any] = {"proxy_image": proxy_image, "user": [user.uid, user.gid], "workload": None}
    if workload is not None:
        job["workload"] = {
            "spec": workload.spec, "image": workload.image, "options": workload.options,
            "workspace_at": workload.workspace_at, "ca_at": workload.ca_at,
        }  # fmt: skip
    _detach(job)


def _detach(job: dict[str, Any]) -> bool:
    """Run `main` on `job` in a process of its own session (a Ctrl-C of this one does not cut it short);
    False when it cannot start."""
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "runner.replay.spare"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(json.dumps(job).encode())
        child.stdin.close()
    except OSError as e:
        log.info("cannot start a process: %s", e)
        return False
    return True


def main() -> None:
    """The detached process: read the job on stdin, start the spare or release a claimed pair, exit (0
    whatever happened)."""
    os.nice(10)
    from runner.engine.daemon import connect

    job = json.loads(sys.stdin.read())
    client = connect()
    try:
        if "release" in job:
            _discard(client, Path(job["release"]))
            return
        uid, gid = job["user"]
        w = job["workload"]
        workload = (
            SpareWorkload(w["spec"], w["image"], w["options"], w["workspace_at"], w["ca_at"]) if w else None
        )
        start_spare(client, job["proxy_image"], User(int(uid), int(gid)), workload)
    finally:
        client.close()


if __name__ == "__main__":
    main()
