"""Spare sidecars and workloads, in Docker: a replay leaves a pair for the next, the next claims it (a
container serves one replay), a pack's commands cannot reach it, it expires by itself, it can be turned off.

Each test has its own RUNNER_HOME, so its spares are its own on an engine other replays share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.engine.containers import SPARE_ROLES, owned
from tests.gitrepo import make_repo
from tests.integration.test_replay import runner
from tests.packfactory import command, make_pack

pytestmark = pytest.mark.docker


@pytest.fixture()
def home(tmp_path: Path, docker_client: Any) -> Iterator[Path]:
    folder = tmp_path / "runner-home"
    yield folder
    for container in _spares(docker_client, folder):
        container.remove(force=True)


def _spares(docker_client: Any, home: Path) -> list[Any]:
    """The spare sidecars whose folder is under `home` (mounted at /data)."""
    found = []
    for c in owned(docker_client):
        if c.labels.get("runner.role") in SPARE_ROLES:
            mounts = c.attrs.get("Mounts") or []
            if any(str(m.get("Source", "")).startswith(str(home)) for m in mounts):
                found.append(c)
    return found


def _waiting(home: Path) -> list[dict[str, Any]]:
    return [json.loads((f / "spare.json").read_text()) for f in sorted((home / "spares" / "ready").glob("*"))]


def _next_pair(home: Path, not_ids: Collection[str] = ()) -> dict[str, Any]:
    """The pair waiting for the next replay, once the process the last replay spawned has made it."""
    deadline = time.monotonic() + 120  # a bound on an engine under load, not a measurement
    while True:
        waiting = [w for w in _waiting(home) if w["id"] not in not_ids and "workload" in w]
        if waiting:
            [pair] = waiting
            return pair
        assert time.monotonic() < deadline, "no spare pair was made"
        time.sleep(0.5)


def _replay(pack: Path, cwd: Path, home: Path, **env: str) -> dict[str, Any]:
    proc = runner("replay", str(pack), "--json", "-", cwd=cwd, env={"RUNNER_HOME": str(home), **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcome: dict[str, Any] = json.loads(proc.stdout)["packs"][0]
    return outcome


def _pack(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    # The commands see neither the spares' folders nor a way to write the CA they trust.
    confined = command("confined", ["sh", "-c", "test ! -e /data && ! touch /runner/ca/x 2>/dev/null"])
    return make_pack(tmp_path, repo=repo, files={"env/pip-freeze.txt": b""}, steps=[confined])


def test_a_replay_leaves_a_spare_pair_that_the_next_one_claims(
    own_images: Any, docker_client: Any, tmp_path: Path, home: Path
) -> None:
    pack = _pack(tmp_path)
    assert _replay(pack, tmp_path, home)["verdict"] == "reproduced"
    first = _next_pair(home)
    by_role = {c.labels["runner.role"]: c for c in _spares(docker_client, home)}
    assert sorted(by_role) == ["spare", "spare-workload"]
    sidecar, workload = by_role["spare"], by_role["spare-workload"]
    assert (sidecar.id, workload.id) == (first["id"], first["workload"])
    assert sidecar.attrs["HostConfig"]["NetworkMode"] == "none"
    assert workload.attrs["HostConfig"]["NetworkMode"] == f"container:{sidecar.id}"
    for container in (sidecar, workload):
        host = container.attrs["HostConfig"]
        assert container.status == "running" and host["AutoRemove"] and host["ReadonlyRootfs"]
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]

    second_run = _replay(pack, tmp_path, home)
    assert second_run["verdict"] == "reproduced" and second_run["cassettes"]["misses"] == []
    second = _next_pair(home, {first["id"]})
    assert [w["id"] for w in _waiting(home)] == [second["id"]]  # the first was claimed
    assert {second["id"], second["workload"]}.isdisjoint({first["id"], first["workload"]})
    deadline = time.monotonic() + 30  # the first pair is removed by a detached process, then its folder
    released = home / "spares" / "released"
    while {first["id"], first["workload"]} & {c.id for c in _spares(docker_client, home)} or any(
        released.iterdir()
    ):
        assert time.monotonic() < deadline, "the claimed pair or its folder was not removed"
        time.sleep(0.5)
    assert sorted(c.id for c in _spares(docker_client, home)) == sorted([second["id"], second["workload"]])
    assert not list((home / "spares" / "claimed").iterdir())


def test_a_spare_expires_by_itself(own_images: Any, docker_client: Any, tmp_path: Path, home: Path) -> None:
    _replay(_pack(tmp_path), tmp_path, home, RUNNER_SPARE_PROXY_IDLE="10")
    _next_pair(home)
    deadline = time.monotonic() + 120  # a bound on an engine under load, not a measurement
    while _spares(docker_client, home):
        assert time.monotonic() < deadline, "the spare did not remove itself"
        time.sleep(1)


def test_spares_can_be_turned_off(own_images: Any, docker_client: Any, tmp_path: Path, home: Path) -> None:
    assert _replay(_pack(tmp_path), tmp_path, home, RUNNER_SPARE_PROXY="0")["verdict"] == "reproduced"
    assert _spares(docker_client, home) == []
    assert not (home / "spares" / "ready").exists() or _waiting(home) == []
