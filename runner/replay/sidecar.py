"""Network stage: the proxy sidecar that serves a pack's cassettes to the workload, with no way out.

Input: a docker client, the proxy image, the pack's cassette (or none) and a folder for the proxy's files.
Output: a running `Sidecar` whose network namespace the workload joins (`network_mode=container:<id>`);
`finish()` stops it and returns the addon's report (served, misses, unused).

Rules: the sidecar runs with network `none`, so its only interface is loopback and replay cannot reach
anything even if the addon wanted to. The cassette is mounted read-only. The CA is made fresh per run. It
runs hardened like the workload (`runner.engine.sandbox.sidecar_options`: the sandbox user, no capability,
read-only root, limits); its folder is handed to that user, who must read the CA key and write the report.
Start-up: most of it is mitmproxy importing itself in the container (1.5 s on a loaded 2-core machine).
`serve_cassettes(..., wait=False)` yields as soon as the container runs (its network namespace exists, so
the workload can join it); `Sidecar.wait_ready()` must then be called before the first command, so the
start overlaps other stages and no request meets a proxy that is not listening yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
import docker.errors
from docker.models.containers import Container

from proxy.cassette import iter_exchanges
from proxy.ready import find_ready
from proxy.report import Report, read_report
from runner.cassettes.process import ProxySettings, mitmdump_args
from runner.cassettes.tls import client_trust_env, make_ca
from runner.engine.containers import started
from runner.engine.sandbox import User, hand_over, sandbox_user, sidecar_options
from runner.errors import PackError, ProxyError

__all__ = ["PROGRAM", "PROXY_PORT", "Sidecar", "has_loopback", "serve_cassettes"]

PROGRAM = ("python3", "/opt/proxy/main.py")  # the proxy in its image (images/proxy/Dockerfile)
PROXY_PORT = 8080
_DATA = PurePosixPath("/data")
_CASSETTE = PurePosixPath("/cassette/http.jsonl")
_CA_IN_WORKLOAD = PurePosixPath("/runner/ca/ca.pem")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class Sidecar:
    container: Container
    workdir: Path
    ca_cert: Path  # on the host; mount it where `workload_env` says
    route_loopback: bool = False  # the cassette holds loopback exchanges: send those to the proxy too
    start_timeout: float = 60.0
    started_at: float = 0.0  # time.monotonic() when the container was started

    def wait_ready(self) -> None:
        """Return once the proxy listens; raise ProxyError with its log if it stopped or took too long."""
        deadline = self.started_at + self.start_timeout
        while find_ready(self.container.logs().decode("utf-8", "replace")) is None:
            self.container.reload()
            if self.container.status not in {"created", "running"} or time.monotonic() > deadline:
                logs = self.container.logs(tail=30).decode("utf-8", "replace")
                raise ProxyError(f"the proxy sidecar did not become ready; its log:\n{logs}")
            time.sleep(0.02)

    @property
    def network_mode(self) -> str:
        return f"container:{self.container.id}"

    def workload_env(self) -> dict[str, str]:
        """Proxy and trust variables for a container that joins this sidecar's namespace.

        Loopback bypasses the proxy (a test may start its own local server), unless the recording holds
        requests to loopback (a local model server, recorded with --record-loopback): then those go to
        the proxy like everything else."""
        env = client_trust_env(_CA_IN_WORKLOAD, f"http://127.0.0.1:{PROXY_PORT}")
        if self.route_loopback:
            env["NO_PROXY"] = env["no_proxy"] = ""
        return env

    def workload_volumes(self) -> dict[str, dict[str, str]]:
        return {str(self.ca_cert): {"bind": str(_CA_IN_WORKLOAD), "mode": "ro"}}

    def finish(self, timeout: float = 15) -> Report:
        """Stop the proxy (it writes its report on the way out) and read the report."""
        try:
            self.container.stop(timeout=int(timeout))
        except docker.errors.DockerException as e:
            raise ProxyError(f"could not stop the proxy sidecar: {e}") from e
        path = self.workdir / "report.json"
        if not path.is_file():
            raise ProxyError(f"the proxy sidecar wrote no report; its log:\n{self.logs()}")
        return read_report(path)

    def logs(self, tail: int = 30) -> str:
        try:
            data: bytes = self.container.logs(tail=tail)
        except docker.errors.DockerException as e:
            return f"(logs unavailable: {e})"
        return data.decode("utf-8", "replace").rstrip()


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
) -> Iterator[Sidecar]:
    """Run the replaying proxy in its own container; removed when the block ends, whatever happens.
    With `wait=False` the caller calls `wait_ready()` before the workload sends anything."""
    user = user or sandbox_user()
    workdir.mkdir(parents=True, exist_ok=True)
    ca = make_ca(workdir / "confdir")
    if cassette is None:  # no recording: every request is a miss, and still nothing leaves
        cassette = workdir / "empty.jsonl"
        cassette.touch()
    hand_over(workdir, user)  # the proxy reads its CA key (0600) and writes its report here
    hardening = sidecar_options(user)
    settings = ProxySettings("replay", cassette, workdir, ignore_fields=ignore_fields, pace=pace)
    args = mitmdump_args(
        settings,
        confdir=_DATA / "confdir",
        cassette=_CASSETTE,
        report=_DATA / "report.json",
        listen_port=PROXY_PORT,
    )
    started_at = time.monotonic()
    with started(
        client,
        proxy_image,
        name_prefix="runner-proxy",
        command=[*PROGRAM, *args],
        environment={**hardening.pop("environment"), "PYTHONUNBUFFERED": "1"},
        volumes={
            str(workdir): {"bind": str(_DATA), "mode": "rw"},
            str(cassette.resolve()): {"bind": str(_CASSETTE), "mode": "ro"},
        },
        extra_labels={**(labels or {}), "runner.role": "proxy"},
        **hardening,
    ) as container:
        loopback = has_loopback(cassette)  # read (and checked) while mitmproxy starts in the container
        proxy = Sidecar(container, workdir, ca.cert_path, loopback, start_timeout, started_at)
        if wait:
            proxy.wait_ready()
        yield proxy


def has_loopback(cassette: Path) -> bool:
    try:
        return any(e.request.host in _LOOPBACK for e in iter_exchanges(cassette))
    except (OSError, ValueError) as e:
        raise PackError(f"{cassette.name}: unreadable cassette ({e})") from e
