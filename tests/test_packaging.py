"""The runner as an installed tool: the wheel carries the image recipes and the proxy addon, and the installed
`runner` works from a folder outside the checkout.

Inputs: the checkout's pyproject.toml, README.md, runner/, proxy/ and images/, copied before the build so a
stale build/ folder of the checkout cannot leak into the wheel; the demo-fix pack built by packs/build.py.
Rules: the `packages` list of pyproject.toml is exactly the package folders on disk; the build prints no
packaging warning; in a fresh virtualenv the tool imports nothing from the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "runner", "proxy", "images")
# A setuptools warning names its class ("_Warning: Package 'x' is absent from the `packages` configuration");
# distutils prints "warning: ...". Byte-compiling being off is pip's choice, not a packaging fault.
WARNING = re.compile(r"\w*Warning: |^\s*warning: (?!.*byte-compiling)", re.MULTILINE)
CACHES = ("__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass(frozen=True)
class Wheel:
    path: Path
    log: str

    def names(self) -> set[str]:
        with zipfile.ZipFile(self.path) as archive:
            return set(archive.namelist())


def _run(args: list[str | Path], *, cwd: Path | None = None, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _uv() -> str | None:
    """uv (a dev dependency) builds and installs in seconds where pip takes a minute; pip is the fallback."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(*CACHES))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    uv = _uv()
    if uv is not None:
        log = _run([uv, "build", "--wheel", "--out-dir", out, src])
    else:
        log = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", out, src])
    (path,) = out.glob("*.whl")
    return Wheel(path, log)


def test_packages_list_is_the_package_folders_on_disk() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-dir"] == {"runner._images": "images"}
    on_disk = {
        ".".join(folder.relative_to(ROOT).parts)
        for top in ("runner", "proxy")
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]
        if (folder / "__init__.py").is_file()
    }
    # The recipe folders hold no Python, only data: each is a package of the wheel all the same.
    on_disk |= {
        ".".join(("runner._images", *folder.relative_to(ROOT / "images").parts)).rstrip(".")
        for folder in [ROOT / "images", *(ROOT / "images").rglob("*")]
        if folder.is_dir() and folder.name not in CACHES
    }
    assert sorted(config["packages"]) == sorted(on_disk)


def test_wheel_carries_the_recipes_the_schema_and_the_addon_without_warnings(wheel: Wheel) -> None:
    names = wheel.names()
    expected = {
        "runner/_images/base/Dockerfile",
        "runner/_images/base/packages",
        "runner/_images/proxy/Dockerfile",
        "runner/pack/manifest.schema.json",
        "runner/py.typed",
        "proxy/addon.py",
    }
    assert expected - names == set()
    sources = {str(p.relative_to(ROOT)) for top in ("runner", "proxy") for p in (ROOT / top).rglob("*.py")}
    assert sources - names == set()
    assert WARNING.findall(wheel.log) == []


@pytest.fixture(scope="module")
def venv(wheel: Wheel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    python = where / "bin" / "python"
    uv = _uv()
    if uv is not None:
        _run([uv, "venv", "-q", "--python", sys.executable, where])
        _run([uv, "pip", "install", "-q", "--python", python, wheel.path], timeout=600)
    else:
        _run([sys.executable, "-m", "venv", where])
        _run([python, "-m", "pip", "install", "-q", wheel.path], timeout=600)
    return where


@pytest.mark.docker
@pytest.mark.slow
def test_installed_runner_replays_a_pack_from_any_directory(
    venv: Path, own_images: Any, tmp_path: Path
) -> None:
    from packs.build import build

    pack = build(ROOT / "packs" / "src" / "demo-fix", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = "import proxy, runner; print(runner.__file__, proxy.__file__)"
    imported = _run([venv / "bin" / "python", "-c", where], cwd=elsewhere).split()
    assert [f for f in imported if not Path(f).resolve().is_relative_to(venv.resolve())] == []
    runner = venv / "bin" / "runner"
    assert "replay" in _run([runner, "--help"], cwd=elsewhere)
    assert "runner-base" in _run([runner, "images", "list"], cwd=elsewhere)
    _run([runner, "replay", pack], cwd=elsewhere, timeout=540)
