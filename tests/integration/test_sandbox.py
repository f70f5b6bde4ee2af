"""The replay sandbox, in Docker: a hostile pack's commands meet limits and no privileges.

Packs built with tests/packfactory.py fork without end, allocate without end, or try to become root; each
must end as its limit or its refusal says, through `runner replay` as a user runs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runner.engine.sandbox import SANDBOX_UID
from tests.gitrepo import make_repo
from tests.integration.test_replay import no_leaks, ours, runner  # noqa: F401  (no_leaks: a fixture)
from tests.packfactory import command, make_pack

pytestmark = pytest.mark.docker
leak_checked = pytest.mark.usefixtures("no_leaks")

SMALL = ("--pids", "64", "--memory", "128m", "--cpus", "1")


def _pack(tmp_path: Path, *steps: Any) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    return make_pack(tmp_path, repo=repo, files={"env/pip-freeze.txt": b""}, steps=list(steps))


def _replay(pack: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = runner("replay", str(pack), *SMALL, *extra, "--json", "-", cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)["packs"][0]


@leak_checked
def test_a_fork_bomb_ends_as_an_error_naming_the_process_limit(own_images: Any, tmp_path: Path) -> None:
    pack = _pack(tmp_path, command("bomb", ["bash", "-c", ":(){ :|:& };:; sleep 600"], timeout=60))
    code, out = _replay(pack, tmp_path)
    assert (code, out["verdict"]) == (3, "error"), out
    step = out["steps"][0]
    assert "process limit (64, --pids)" in step["summary"] and step["limit"]
    assert "step bomb hit the process limit" in out["error"]
    assert "64 processes" in out["sandbox"]


@leak_checked
def test_a_memory_hog_ends_as_an_error_naming_the_memory_limit(own_images: Any, tmp_path: Path) -> None:
    hog = "x = []\nwhile True: x.append(bytearray(1 << 20))"
    pack = _pack(tmp_path, command("hog", ["python3", "-c", hog], timeout=60))
    code, out = _replay(pack, tmp_path)
    assert (code, out["verdict"]) == (3, "error"), out
    assert "memory limit (128 MiB, --memory): a process was OOM-killed" in out["steps"][0]["summary"]
    assert "memory 128 MiB (no swap)" in out["sandbox"]


ESCALATIONS = {
    "su": ["su", "-c", "id", "root"],
    "setpriv": ["setpriv", "--reuid=0", "--regid=0", "--clear-groups", "id"],
    "unshare": ["unshare", "-r", "id"],
    "passwd": ["sh", "-c", "echo 'x::0:0::/:/bin/sh' >> /etc/passwd"],
    "raw-socket": ["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)"],
    "chown": ["chown", "0:0", "a.txt"],
}


@leak_checked
def test_becoming_root_or_raising_a_capability_fails(own_images: Any, tmp_path: Path) -> None:
    # Each escalation is recorded as having succeeded (exit 0, no output): in the sandbox each must fail.
    steps = [command(name, argv) for name, argv in ESCALATIONS.items()]
    confined = "test \"$(id -u)\" != 0 && grep -q 'CapEff:[[:space:]]*0000000000000000' /proc/self/status"
    steps.append(command("confined", ["sh", "-c", confined]))
    code, out = _replay(_pack(tmp_path, *steps), tmp_path, "--keep-going")
    assert (code, out["verdict"]) == (1, "diverged"), out
    by_id = {s["step_id"]: s for s in out["steps"]}
    for name in ESCALATIONS:
        assert not by_id[name]["ok"], by_id[name]
        assert by_id[name]["summary"].startswith("exit code "), by_id[name]
    assert by_id["confined"]["ok"], by_id["confined"]


def test_both_containers_are_hardened_and_the_kept_workspace_is_the_sandbox_users(
    own_images: Any, docker_client: Any, tmp_path: Path
) -> None:
    pack = _pack(tmp_path, command("touch", ["sh", "-c", "touch made.txt && mkdir -p /tmp/x"]))
    code, out = _replay(pack, tmp_path, "--keep")
    try:
        assert (code, out["verdict"]) == (0, "reproduced"), out
        kept = ours(docker_client, tmp_path)
        assert len(kept) == 2, kept
        for name in kept:
            host = docker_client.api.inspect_container(name)["HostConfig"]
            assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
            assert host["SecurityOpt"] == ["no-new-privileges"] and host["ReadonlyRootfs"], name
            assert host["Memory"] == host["MemorySwap"] > 0 and host["PidsLimit"] > 0, name
            user = docker_client.api.inspect_container(name)["Config"]["User"]
            assert (
                user == f"{SANDBOX_UID}:{SANDBOX_UID}"
                if os.geteuid() == 0
                else f"{os.getuid()}:{os.getgid()}"
            )
        workload = next(n for n in kept if "workload" in n)
        host = docker_client.api.inspect_container(workload)["HostConfig"]
        assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (128 << 20, 64, 10**9)
        workspace = Path(
            next(m["Source"] for m in docker_client.api.inspect_container(workload)["Mounts"]
                 if m["Destination"] == "/workspace")
        )  # fmt: skip
        expected = SANDBOX_UID if os.geteuid() == 0 else os.getuid()
        assert {p.stat().st_uid for p in [workspace, *workspace.rglob("*")]} == {expected}
        assert (workspace / "made.txt").is_file()
    finally:
        for name in ours(docker_client, tmp_path):
            docker_client.api.remove_container(name, force=True)
