from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import pytest

from runner.pack import snapshot
from runner.pack.snapshot import EnvSnapshot, PythonPackage, pip_requirements


def _fake_tool(bindir: Path, name: str, output: str) -> None:
    tool = bindir / name
    tool.write_text(f"#!/bin/sh\necho '{output}'\n")
    tool.chmod(0o755)


def test_snapshot_uses_the_agents_path_and_hashes_unlisted_env(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_tool(bindir, "git", "git version 9.9.9")
    (bindir / "python3").symlink_to(sys.executable)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "uv.lock").write_text("lock\n")
    environ = {"PATH": str(bindir), "LANG": "C.UTF-8", "OPENAI_API_KEY": "sk-planted-secret-value"}
    snap = snapshot.take(environ, key=b"k1", repo=repo)
    assert snap.tools["git"] == "git version 9.9.9"
    assert snap.tools["gcc"] is None  # not on the agent's PATH, even if the host has it
    assert snap.python is not None and snap.python["version"] == sys.version.split()[0]
    assert any(p.name.lower() == "pytest" for p in snap.packages)
    # Console scripts map back to the package that installs them (argv[0] then resolves in the image).
    assert snapshot.console_scripts(snap)["pytest"].lower() == "pytest"
    assert snap.env["LANG"] == "C.UTF-8"
    assert snap.env["OPENAI_API_KEY"].startswith("hmac-sha256:")
    assert snap.lockfiles == ("uv.lock",)
    # Same value and key give the same hash; another key gives another.
    again = snapshot.take(environ, key=b"k1", repo=repo)
    other = snapshot.take(environ, key=b"k2", repo=repo)
    assert again.env["OPENAI_API_KEY"] == snap.env["OPENAI_API_KEY"] != other.env["OPENAI_API_KEY"]

    written = snapshot.write(snap, tmp_path / "env", repo=repo)
    assert written == ["snapshot.json", "pip-freeze.txt", "lockfiles/uv.lock"]
    raw = (tmp_path / "env" / "snapshot.json").read_text()
    assert "sk-planted-secret-value" not in raw
    assert json.loads(raw)["tools"]["git"] == "git version 9.9.9"


def test_packages_are_the_installed_ones_once_each_not_the_working_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unpacked sdist (six-1.16.0/six.egg-info) is the repository, not an installed package; a name found
    twice on the path is the first one, which an import gets."""
    bindir, repo, shadow = tmp_path / "bin", tmp_path / "repo", tmp_path / "shadow"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    for folder, name in (
        (repo / "planted.egg-info", "planted"),
        (shadow / "pytest-0.0.1.dist-info", "pytest"),
    ):
        folder.mkdir(parents=True)
        (folder / ("PKG-INFO" if folder.suffix == ".egg-info" else "METADATA")).write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n"
        )
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    snap = snapshot.take({"PATH": str(bindir)}, key=b"k", repo=repo)
    names = [p.name.lower() for p in snap.packages]
    assert "planted" not in names
    assert names.count("pytest") == 1 and "pytest==0.0.1" in pip_requirements(snap)


def test_no_python_on_path(tmp_path: Path) -> None:
    snap = snapshot.take({"PATH": str(tmp_path)}, key=b"k")
    assert snap.python is None and snap.packages == ()


def test_requirements_leave_out_what_an_index_cannot_reinstall() -> None:
    snap = EnvSnapshot(
        os={},
        python=None,
        tools={},
        container=None,
        gpu=None,
        env={},
        packages=(
            PythonPackage("pytest", "8.3.3"),
            PythonPackage("mytool", "0.1", editable=True, direct_url="file:///src/mytool"),
            PythonPackage("fork", "1.0", direct_url="git+https://example.invalid/fork"),
        ),
    )
    assert pip_requirements(snap) == "pytest==8.3.3\n"


def test_snapshot_names_the_cpu(tmp_path: Path) -> None:
    snap = snapshot.take({"PATH": str(tmp_path)}, key=b"k")
    assert snap.cpu["count"] == str(os.cpu_count())
    assert snap.cpu["arch"] == platform.machine()
    if Path("/proc/cpuinfo").is_file() and "model name" in Path("/proc/cpuinfo").read_text():
        assert snap.cpu["model"]
