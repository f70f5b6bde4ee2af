"""The backend seam without an engine: choosing a backend, drift warnings, the local virtualenv cache, what
the local workload refuses to write on the host, and the local namespace's own root with /workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from runner.engine.host import BuildTrust
from runner.errors import EngineError, UsageError
from runner.pack import manifest as mf
from runner.progress import Silent
from runner.replay import backends
from runner.replay.backends import venv
from runner.replay.backends.local import LocalSession
from runner.replay.backends.netns import Namespace, private_network
from tests.helpers.prerequisites import unavailable
from tests.packfactory import make_manifest


def test_an_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--backend 'podman': expected one of docker, local, auto"):
        backends.select("podman")


def test_auto_without_an_engine_is_local_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    choice = backends.select("auto")
    assert (choice.name, choice.client) == ("local", None)
    assert "no Docker engine answers at DOCKER_HOST=unix:///nonexistent.sock" in choice.note


def test_docker_without_an_engine_names_the_local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(EngineError, match="or replay without Docker: --backend local"):
        backends.select("docker")


def test_drift_names_the_interpreter_and_the_packages_that_did_not_install() -> None:
    manifest = make_manifest()  # recorded Python 3.11.8
    assert backends.drift(None, manifest, "the replay virtualenv") == [
        "python3 is not available in the replay virtualenv; recorded Python commands will fail"
    ]
    warnings = backends.drift(backends.Probe("3.12.1", ("numpy==1.0",)), manifest, "the replay virtualenv")
    assert warnings == [
        "Python 3.11.8 was recorded, the replay virtualenv has 3.12.1",
        "package numpy==1.0 did not install in the replay virtualenv",
    ]
    assert backends.drift(backends.Probe("3.11.8"), manifest, "x") == []


def test_the_interpreter_matches_the_recorded_minor_version_or_says_it_does_not() -> None:
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"  # the running one: always on this machine
    path, version, warnings = venv.interpreter(f"{minor}.0")
    assert not warnings and f"python{minor}" in path and version.startswith(f"{minor}.")
    path, _, warnings = venv.interpreter("3.4.10")
    assert path == sys.executable and warnings and "no python3.4 on this machine" in warnings[0]


def test_a_virtualenv_is_built_once_per_recipe_and_never_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    trust = BuildTrust(None)
    first = venv.ensure([], sys.executable, "3.11.0", trust, Silent())
    again = venv.ensure([], sys.executable, "3.11.0", trust, Silent())
    assert first.built and not again.built and first.path == again.path
    assert first.path.parent == tmp_path / "runner" / "venvs"
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no build folder left
    assert (first.path / venv.FAILED).read_text() == ""
    other = venv.ensure([], sys.executable, "3.11.1", trust, Silent())
    assert other.path != first.path


def test_scripts_follow_the_rename_of_the_build_folder(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pytest").write_text(f"#!{tmp_path}/.build-x/bin/python\nimport pytest\n")
    venv._rebase_scripts(bin_dir, tmp_path / ".build-x", tmp_path / "final")
    assert (bin_dir / "pytest").read_text().startswith(f"#!{tmp_path}/final/bin/python\n")


def _session(tmp_path: Path) -> LocalSession:
    for folder in ("home", "relocated", "workspace"):
        (tmp_path / folder).mkdir()
    proxy: Any = None
    return LocalSession(
        tmp_path / "venv", tmp_path / "workspace", PurePosixPath("/workspace"), tmp_path, Namespace("none"),
        proxy, route_loopback=False,
    )  # fmt: skip


def test_the_local_workload_writes_agent_files_only_under_its_own_folder(tmp_path: Path) -> None:
    session = _session(tmp_path)
    source = tmp_path / "file"
    source.write_text("x")
    home = session.home / ".config" / "agent.yaml"
    assert session.copy_in(source, home) and Path(home).read_text() == "x"
    assert not session.copy_in(source, PurePosixPath("/etc/runner-test-must-not-exist"))
    assert not session.copy_in(source, session.home / ".." / ".." / "escape")
    (tmp_path / "home" / "link").symlink_to("/etc")
    assert not session.copy_in(source, session.home / "link" / "runner-test-must-not-exist")
    assert not Path("/etc/runner-test-must-not-exist").exists()


def test_without_isolation_commands_run_as_they_are() -> None:
    plain = Namespace("no isolation")
    assert plain.enter(["true"], "/w") == (["true"], "/w") and not plain.isolated
    entered = Namespace("ns", None, ("nsenter", "--net=/proc/1/ns/net", "--"))
    assert entered.enter(["true"], "/w") == (
        ["nsenter", "--net=/proc/1/ns/net", "--", "sh", "-c", 'cd "$0" && exec "$@"', "/w", "true"],
        None,
    )


def test_the_workspace_is_shown_in_a_root_of_the_replays_own_and_nothing_is_made_on_the_host(
    tmp_path: Path,
) -> None:
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, check=False).returncode:
        unavailable("no mount namespace can be made here (run as root)")
    workspace, root = tmp_path / "workspace", tmp_path / "root"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("one\n")
    host_has_workspace = Path("/workspace").exists()
    look = (
        "import os, pathlib; print(os.getcwd()); print(pathlib.Path('notes.txt').read_text(), end=''); "
        "print(os.readlink('/bin') if os.path.islink('/bin') else '-'); print(sorted(os.listdir('/etc'))[:5])"
    )
    with private_network(no_isolation=False) as namespace:
        assert namespace.show(workspace, PurePosixPath("/workspace"), root) == PurePosixPath("/workspace")
        assert str(root) not in Path("/proc/self/mountinfo").read_text()  # the host sees none of its mounts
        assert not list(root.iterdir())
        argv, cwd = namespace.enter([sys.executable, "-c", look], "/workspace")
        seen = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout.splitlines()
        (workspace / "written-outside.txt").write_text("x")  # one folder, seen from both sides
        argv, _ = namespace.enter(["cat", "/workspace/written-outside.txt"])
        assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "x"
    host_bin = os.readlink("/bin") if os.path.islink("/bin") else "-"
    assert seen == ["/workspace", "one", host_bin, str(sorted(os.listdir("/etc"))[:5])]
    assert Path("/workspace").exists() == host_has_workspace and not list(root.iterdir())


def test_a_root_that_cannot_be_made_is_undone_and_said(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, check=False).returncode:
        unavailable("no mount namespace can be made here (run as root)")
    with private_network(no_isolation=False) as namespace:
        why = namespace.show(tmp_path / "missing", PurePosixPath("/workspace"), tmp_path / "root")
        argv, _ = namespace.enter(["cat", "/proc/self/mountinfo"])
        inside = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert why == (
        f"making a root with /workspace in {tmp_path / 'root'} failed: No such file or directory "
        f"(mounting on {tmp_path / 'root' / 'workspace'})"
    )
    assert str(tmp_path) not in inside  # the tmpfs and the binds made before the failure are gone


def test_without_a_mount_namespace_the_workspace_keeps_its_path(tmp_path: Path) -> None:
    assert "--no-isolation" in str(
        Namespace("none").show(tmp_path, PurePosixPath("/workspace"), tmp_path / "r")
    )
    holder: Any = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    holder.wait()
    no_mount = Namespace("ns", holder, ("nsenter", "--net=/proc/1/ns/net", "--"))
    assert no_mount.show(tmp_path, PurePosixPath("/workspace"), tmp_path / "r") == (
        "no mount namespace could be made here"
    )
    holder.stdin.close()
    assert not (tmp_path / "r").exists()


def test_make_manifest_records_a_snapshot() -> None:  # the drift test above relies on it
    assert make_manifest().environment.snapshot == mf.EnvSnapshot(
        python="3.11.8", packages="env/pip-freeze.txt", os="Debian GNU/Linux 12"
    )
