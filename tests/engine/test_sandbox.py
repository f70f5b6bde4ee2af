"""The sandbox's choices without Docker: its user, its options, its limits in words, the hand-over, the watch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.engine import sandbox
from runner.engine.sandbox import SANDBOX_UID, Limits, LimitWatch, User
from runner.errors import EngineError, UsageError


def test_the_invoking_user_unless_root() -> None:
    # Not root: the containers run as the invoking user, so what they write (a kept workspace) is theirs.
    assert sandbox.sandbox_user(euid=1000, uid=1000, gid=1001) == User(1000, 1001)
    # Root: never root inside; a fixed unprivileged id instead.
    assert sandbox.sandbox_user(euid=0, uid=0, gid=0) == User(SANDBOX_UID, SANDBOX_UID)
    assert str(sandbox.sandbox_user(euid=0)) == "65532:65532"


@pytest.mark.parametrize(
    ("text", "size"), [("128m", 128 << 20), ("4g", 4 << 30), ("1.5G", 3 << 29), ("64MiB", 64 << 20)]
)
def test_memory_sizes(text: str, size: int) -> None:
    assert sandbox.parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "-1g", "1t", "1m"])
def test_bad_memory_sizes_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--memory"):
        sandbox.parse_memory(text)


def test_a_bad_limit_is_exit_2_with_one_line(tmp_path: Path) -> None:
    pack = tmp_path / "p.tar.zst"
    pack.write_bytes(b"")
    result = CliRunner().invoke(app, ["replay", str(pack), "--memory", "plenty"])
    assert result.exit_code == 2
    assert "--memory 'plenty': expected a size such as 512m or 4g" in result.output
    assert "Traceback" not in result.output


class _Client:
    def __init__(self, runtimes: tuple[str, ...] = ("runc",), ncpu: int = 4) -> None:
        self._info = {"Runtimes": {r: {} for r in runtimes}, "NCPU": ncpu}

    def info(self) -> dict[str, Any]:
        return self._info


def test_workload_options_drop_everything_and_limit_everything() -> None:
    opts = sandbox.workload_options(_Client(ncpu=1), Limits(128 << 20, 64, 2.0), User(1000, 1000))  # type: ignore[arg-type]
    assert opts["user"] == "1000:1000" and opts["cap_drop"] == ["ALL"] and "cap_add" not in opts
    assert opts["security_opt"] == ["no-new-privileges"] and opts["read_only"] is True
    assert opts["mem_limit"] == opts["memswap_limit"] == 128 << 20 and opts["pids_limit"] == 64
    assert opts["nano_cpus"] == 10**9  # clamped to the engine's one CPU
    assert set(opts["tmpfs"]) == {"/tmp", "/var/tmp"} and opts["environment"] == {"HOME": "/tmp"}
    assert "runtime" not in opts


def test_an_unknown_runtime_is_an_environment_error() -> None:
    with pytest.raises(EngineError, match="--runtime runsc: the Docker engine knows only runc"):
        sandbox.workload_options(_Client(), Limits(runtime="runsc"), User(1, 1))  # type: ignore[arg-type]
    opts = sandbox.workload_options(_Client(("runc", "runsc")), Limits(runtime="runsc"), User(1, 1))  # type: ignore[arg-type]
    assert opts["runtime"] == "runsc"


def test_the_sidecar_is_hardened_too() -> None:
    opts = sandbox.sidecar_options(User(SANDBOX_UID, SANDBOX_UID))
    assert (opts["user"], opts["cap_drop"], opts["read_only"]) == ("65532:65532", ["ALL"], True)
    assert opts["pids_limit"] > 0 and opts["mem_limit"] == opts["memswap_limit"] > 0


def test_describe_says_every_limit() -> None:
    text = sandbox.describe(Limits(128 << 20, 64, 1.5, "runsc"), User(65532, 65532))
    assert text == (
        "user 65532:65532, no capabilities, no-new-privileges, read-only root, memory 128 MiB (no swap), "
        "64 processes, 1.5 CPUs, runtime runsc"
    )


def test_lending_a_folder_never_follows_a_symlink_out_of_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "file.txt").write_text("x\n")
    (ws / "escape").symlink_to(outside)
    (ws / "dir-escape").symlink_to(tmp_path)
    me = (os.getuid(), os.getgid())
    owner = User(SANDBOX_UID, SANDBOX_UID)
    with sandbox.lend(ws, owner):
        expected = (SANDBOX_UID, SANDBOX_UID) if os.geteuid() == 0 else me  # only root can lend
        for p in (ws, ws / "sub", ws / "sub" / "file.txt", ws / "escape"):
            st = p.lstat()
            assert (st.st_uid, st.st_gid) == expected, p
        assert (outside.stat().st_uid, outside.stat().st_gid) == me
        assert (tmp_path.stat().st_uid, tmp_path.stat().st_gid) == me
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [ws, *ws.rglob("*")]} == {me}


class _Api:
    def __init__(self, ooms: int) -> None:
        self.ooms = ooms

    def events(self, **kwargs: Any) -> list[dict[str, str]]:
        assert kwargs["filters"]["event"] == "oom"
        return [{"Action": "oom"}] * self.ooms


class _Container:
    """A container whose cgroup is not visible from here (a remote engine): the watch asks the engine."""

    id = "c0ffee"

    def __init__(self, pids: int, ooms: int) -> None:
        self.attrs = {"State": {"Pid": 0}}
        self.client = type("C", (), {"api": _Api(ooms)})()
        self.pids = pids

    def reload(self) -> None:
        pass

    def stats(self, **kwargs: Any) -> dict[str, Any]:
        return {"pids_stats": {"current": self.pids, "limit": 64}}


@pytest.mark.parametrize(
    ("pids", "ooms", "said"),
    [
        (3, 0, None),
        (64, 0, "the process limit (64, --pids): a fork was refused"),
        (3, 1, "the memory limit (128 MiB, --memory): a process was OOM-killed"),
    ],
)
def test_the_watch_names_the_limit_that_was_hit(pids: int, ooms: int, said: str | None) -> None:
    watch = LimitWatch(_Container(pids, ooms), Limits(128 << 20, 64))  # type: ignore[arg-type]
    watch.start()
    assert watch.check() == said


@pytest.mark.parametrize("known", [False, True])  # started here (created: no pid yet); looked up running
def test_one_watch_serves_every_step_and_asks_the_engine_for_the_pid_at_most_once(known: bool) -> None:
    container = _Container(3, 0)
    live = {"State": {"Pid": os.getpid()}}  # a live pid: its cgroup is read from the host
    reloads = []

    def reload() -> None:
        reloads.append(1)
        container.attrs = live

    container.reload = reload  # type: ignore[method-assign]
    if known:
        container.attrs = live
    watch = LimitWatch(container, Limits(128 << 20, 64))  # type: ignore[arg-type]
    for _ in range(3):
        watch.start()
        assert watch.check() is None
    assert len(reloads) == (0 if known else 1)
