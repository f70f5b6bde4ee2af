"""Network stage: the proxy sidecar that serves a pack's cassettes to the workload, with no way out.

Input: a docker client, the proxy image, the pack's cassette (or none) and a folder for the proxy's files.
Output: a running `Sidecar` whose network namespace the workload joins (`network_mode=container:<id>`);
`finish()` stops it and returns the addon's report (served, misses, unused).

Rules: the sidecar runs with network `none`, so its only interface is loopback and replay cannot reach
anything even if the addon wanted to. It runs hardened like the workload (`runner.engine.sandbox.
sidecar_options`: the sandbox user, no capability, read-only root, limits); its folder (mounted at /data)
is handed to that user, who must read the CA key and the cassette and write the report. Its CA is its own:
made with it, used by one replay. Start-up: most of it is mitmproxy importing itself in the container
(1.5 s on a loaded 2-core machine), so a replay first claims a spare sidecar that a previous replay
started and that has imported mitmproxy already (`runner.replay.spare`); with none waiting it starts its
own. Either way the container runs `proxy.claim`, which starts mitmdump with the arguments the replay
writes into its folder (the cassette is copied there). `serve_cassettes(..., wait=False)` yields as soon as
the container runs (its network namespace exists, so the workload can join it); `Sidecar.wait_ready()`,
which follows the container's log for the proxy's ready line, must then be called before the first command,
so the start overlaps other stages and no request meets a proxy that is not listening yet. `finish()` asks
the proxy to stop (SIGTERM) and returns as soon as its report is written; the container is then removed
with force, not waited for.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
import docker.errors
from docker.models.containers import Container

from proxy.cassette import iter_exchanges
from proxy.claim import CLAIM_FILE
from proxy.ready import find_ready
from proxy.report import Report, read_report
from runner.cassettes.process import ProxySettings, mitmdump_args
from runner.cassettes.tls import client_trust_env, make_ca
from runner.engine.containers import adopted, started
from runner.engine.sandbox import User, hand_over, sandbox_user
from runner.errors import PackError, ProxyError
from runner.replay import spare

__all__ = [
    "CA_IN_WORKLOAD",
    "PROXY_PORT",
    "Sidecar",
    "hand_claim",
    "has_loopback",
    "serve_cassettes",
    "workload_env",
]

PROXY_PORT = 8080
_CASSETTE = "cassette.jsonl"
CA_IN_WORKLOAD = PurePosixPath("/runner/ca/ca.pem")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_POLL = 0.01


@dataclass(frozen=True)
class Sidecar:
    container: Container
    workdir: Path  # the sidecar's folder on the host (its /data): the CA, the cassette, the report
    ca_cert: Path  # on the host; mount it where `workload_env` says
    route_loopback: bool = False  # the cassette holds loopback exchanges: send those to the proxy too
    start_timeout: float = 60.0
    started_at: float = 0.0  # time.monotonic() when the container was claimed or started
    report_copy: Path | None = None  # where `finish` also leaves the report (a claimed spare's folder goes)

    def wait_ready(self) -> None:
        """Return once the proxy listens; raise ProxyError with its log if it stopped or took too long.

        The log is followed (one request, streamed) rather than polled."""
        ready = threading.Event()

        def follow() -> None:
            seen = ""
            try:
                for chunk in self.container.logs(stream=True, follow=True):
                    seen += chunk.decode("utf-8", "replace")
                    if find_ready(seen) is not None:
                        ready.set()
                        return
            except docker.errors.DockerException:
                pass

        follower = threading.Thread(target=follow, name="proxy-ready", daemon=True)
        follower.start()
        deadline = self.started_at + self.start_timeout
        while not ready.is_set():
            # The stream ends when the container stops; else give up at the deadline.
            follower.join(max(0.0, min(deadline - time.monotonic(), 1.0)))
            if ready.is_set():
                break
            if not follower.is_alive() or time.monotonic() > deadline:
                raise ProxyError(f"the proxy sidecar did not become ready; its log:\n{self.logs()}")

    @property
    def network_mode(self) -> str:
        return f"container:{self.container.id}"

    def workload_env(self) -> dict[str, str]:
        """Proxy and trust variables for a container that joins this sidecar's namespace.

        Loopback bypasses the proxy (a test may start its own local server), unless the recording holds
        requests to loopback (a local model server, recorded with --record-loopback): then those go to
        the proxy like everything else."""
        return workload_env(self.route_loopback)

    def workload_volumes(self) -> dict[str, dict[str, str]]:
        return {str(self.ca_cert): {"bind": str(CA_IN_WORKLOAD), "mode": "ro"}}

    def finish(self, timeout: float = 15) -> Report:
        """Ask the proxy to stop and read the report it writes on the way out (the container's own exit
        is not waited for: it is removed with force)."""
        path = self.workdir / "report.json"
        try:
            self.container.kill(signal="SIGTERM")
        except docker.errors.DockerException as e:
            raise ProxyError(f"could not stop the proxy sidecar: {e}") from e
        deadline = time.monotonic() + timeout
        polls = 0
        while not path.is_file():
            polls += 1
            if time.monotonic() > deadline or (polls % 50 == 0 and not self._alive()):
                raise ProxyError(f"the proxy sidecar wrote no report; its log:\n{self.logs()}")
            time.sleep(_POLL)
        if self.report_copy is not None:
            shutil.copyfile(path, self.report_copy)
        return read_report(path)

    def _alive(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.DockerException:
            return False
        return self.container.status in {"created", "running"}

    def logs(self, tail: int = 30) -> str:
        try:
            data: bytes = self.container.logs(tail=tail)
        except docker.errors.DockerException as e:
            return f"(logs unavailable: {e})"
        return data.decode("utf-8", "replace").rstrip()


def workload_env(route_loopback: bool) -> dict[str, str]:
    """`Sidecar.workload_env` before the sidecar exists (a spare workload is made with it)."""
    env = client_trust_env(CA_IN_WORKLOAD, f"http://127.0.0.1:{PROXY_PORT}")
    if route_loopback:
        env["NO_PROXY"] = env["no_proxy"] = ""
    return env


@contextmanager
def serve_cassettes(
    client: docker.DockerClient,
    proxy_image: str,
    cassette: Path | None,
    workdir: Path,
    *,
    ignore_fields: tuple[str, ...] | None = None,
    pace: float = 0.0,
    start_timeout: float = 60.0,
    labels: dict[str, str] | None = None,
    user: User | None = None,
    wait: bool = True,
    claim: bool = True,
    claimed: spare.Claimed | None = None,
    route_loopback: bool | None = None,
) -> Iterator[Sidecar]:
    """Run the replaying proxy in its own container: `claimed` (a spare the caller claimed), a spare
    claimed here (unless `claim` is False) or a new one; removed when the block ends, whatever happens,
    and its report left in `workdir`. With `wait=False` the caller calls `wait_ready()` before the
    workload sends anything. `route_loopback`: whether the cassette holds loopback exchanges, when the
    caller knows already (`has_loopback`); None: read here."""
    user = user or sandbox_user()
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if claimed is None and claim:
            claimed = spare.claim(client, proxy_image, user)
            if claimed is not None:  # claimed here, removed here; the caller's own claim is the caller's
                stack.callback(shutil.rmtree, claimed.folder, ignore_errors=True)  # after the container
        if claimed is not None:
            folder = claimed.folder
            container: Container | None = stack.enter_context(adopted(claimed.container))
        else:
            folder, container = workdir, None
            make_ca(folder / "confdir")
            hand_over(folder, user)  # the proxy reads its CA key (0600) and writes its report here
        if not (folder / CLAIM_FILE).exists():  # else handed over already (`hand_claim`)
            hand_claim(folder, cassette, user, ignore_fields, pace)
        started_at = time.monotonic()
        if container is None:
            role = {**(labels or {}), "runner.role": "proxy"}
            settings = spare.options(proxy_image, folder, user, idle=start_timeout, extra_labels=role)
            image, extra = settings.pop("image"), settings.pop("labels")
            container = stack.enter_context(
                started(client, image, name_prefix="runner-proxy", extra_labels=extra, **settings)
            )
        if route_loopback is None:  # read (and checked) while mitmproxy starts
            route_loopback = has_loopback(cassette)
        ca = folder / "confdir" / "mitmproxy-ca-cert.pem"
        report = workdir / "report.json" if folder != workdir else None
        proxy = Sidecar(container, folder, ca, route_loopback, start_timeout, started_at, report)
        if wait:
            proxy.wait_ready()
        yield proxy


def hand_claim(
    folder: Path,
    cassette: Path | None,
    user: User,
    ignore_fields: tuple[str, ...] | None = None,
    pace: float = 0.0,
) -> None:
    """Put the cassette in the sidecar's folder, then the claim that starts its proxy (written whole).
    Called early by a caller that claimed a spare, so the proxy starts while it does other things."""
    target = folder / _CASSETTE
    if cassette is None:  # no recording: every request is a miss, and still nothing leaves
        target.touch()
    else:
        shutil.copyfile(cassette, target)
    # The folder and its CA are the sandbox user's already; a spare pair's workspace beside them is not.
    hand_over(target, user)
    data = spare.DATA
    settings = ProxySettings("replay", target, folder, ignore_fields=ignore_fields, pace=pace)
    argv = mitmdump_args(
        settings,
        confdir=data / "confdir",
        cassette=data / _CASSETTE,
        report=data / "report.json",
        listen_port=PROXY_PORT,
    )
    tmp = folder / f".{CLAIM_FILE}.tmp"
    tmp.write_text(json.dumps({"argv": argv}), encoding="utf-8")
    os.replace(tmp, folder / CLAIM_FILE)


def has_loopback(cassette: Path | None) -> bool:
    """Whether the cassette (None: no recording) holds exchanges with a loopback host."""
    if cassette is None:
        return False
    try:
        return any(e.request.host in _LOOPBACK for e in iter_exchanges(cassette))
    except (OSError, ValueError) as e:
        raise PackError(f"{cassette.name}: unreadable cassette ({e})") from e
