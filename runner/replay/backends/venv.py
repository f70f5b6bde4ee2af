"""The local backend's environment: the recorded Python packages, at their exact versions, in a virtualenv.

Input: the exact pins (`runner.replay.environment.snapshot_requirements`, the recipe the Docker image uses
too), the recorded Python version and the host's build trust. Output: a `Venv` (its folder, the
interpreter it was made from) and warnings for what it cannot reproduce.

Rules: the interpreter is the host's `pythonX.Y` matching the recorded major.minor when one runs (on PATH,
else pyenv's newest X.Y), else this runner's own (a warning says so). A virtualenv is cached under
$XDG_CACHE_HOME/runner/venvs/<hash of its recipe> (interpreter version and path, sorted pins): built in a
temporary sibling folder and renamed when complete, so an interrupted build is never used, and a second replay
of the same recipe builds nothing. pip installs with no dependency resolution (the freeze lists them all),
with the host's index settings (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, and the CA bundle as PIP_CERT); when the
whole set fails, packages are installed one at a time and those that do not install are written to
`.runner-failed` for the report. Console scripts' `#!` lines name the build folder: they are rewritten to the
final one before the rename."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner.engine.host import BuildTrust
from runner.errors import EnvironmentProblem
from runner.progress import Progress

__all__ = ["FAILED", "Venv", "cache_root", "ensure", "interpreter"]

FAILED = ".runner-failed"  # in the virtualenv: requirements that did not install, one a line
_VERSION = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class Venv:
    path: Path
    built: bool  # False: an earlier replay built it

    @property
    def bin(self) -> Path:
        return self.path / "bin"


def cache_root(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runner" / "venvs"


def _version_of(python: str) -> str | None:
    try:
        proc = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def interpreter(recorded: str | None) -> tuple[str, str, list[str]]:
    """(interpreter path, its version, warnings): the host's pythonX.Y for the recorded X.Y, else ours."""
    match = _VERSION.match(recorded or "")
    if match is not None:
        for found in _candidates(match[1], match[2]):
            version = _version_of(found)
            if version and version.startswith(f"{match[1]}.{match[2]}."):
                return found, version, []
    ours = sys.executable
    version = _version_of(ours) or ".".join(map(str, sys.version_info[:3]))
    if recorded is None or match is None:
        return ours, version, []
    return (
        ours,
        version,
        [f"no python{match[1]}.{match[2]} on this machine: the virtualenv uses Python {version}"],
    )


def _candidates(major: str, minor: str) -> list[str]:
    """pythonX.Y on PATH, then pyenv's installed X.Y.* (newest first), which its shims may not select."""
    name = f"python{major}.{minor}"
    found = [p for p in (shutil.which(name),) if p and "/shims/" not in p]  # a shim may select nothing
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = sorted(pyenv.glob(f"{major}.{minor}.*/bin/{name}"), key=lambda p: _numbers(p.parents[1].name))
    return found + [str(p) for p in reversed(installed)]


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _pip_env(trust: BuildTrust) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    if trust.ca_bundle is not None:
        env["PIP_CERT"] = str(trust.ca_bundle)
    if trust.pip_index_url:
        env["PIP_INDEX_URL"] = trust.pip_index_url
    if trust.pip_extra_index_url:
        env["PIP_EXTRA_INDEX_URL"] = trust.pip_extra_index_url
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _recipe_hash(python: str, version: str, pins: list[str]) -> str:
    text = "\n".join([f"python {version} {python}", *sorted(pins, key=str.lower)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(pins: list[str], python: str, version: str, trust: BuildTrust, progress: Progress) -> Venv:
    """The cached virtualenv of this recipe, built first when missing."""
    root = cache_root()
    final = root / f"py{version}-{_recipe_hash(python, version, pins)}"
    if (final / "bin" / "python").exists():
        return Venv(final, built=False)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        progress.step(f"building the virtualenv {final.name} ({len(pins)} packages)")
        _build(work, pins, python, trust)
        _rebase_scripts(work / "bin", work, final)
        try:
            work.rename(final)
        except OSError:  # another replay renamed the same recipe first: theirs is as good
            if not (final / "bin" / "python").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Venv(final, built=True)


def _build(work: Path, pins: list[str], python: str, trust: BuildTrust) -> None:
    no_pip = [] if pins else ["--without-pip"]  # nothing to install: no pip to copy in either
    made = subprocess.run(
        [python, "-m", "venv", *no_pip, str(work)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        why = (made.stderr or made.stdout).strip().splitlines()[-1:] or [f"exit {made.returncode}"]
        raise EnvironmentProblem(f"cannot make a virtualenv with {python}: {why[0]}; install its venv module")
    failed = work / FAILED
    failed.touch()
    if not pins:
        return
    pip = [str(work / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-cache-dir", "-q"]
    env = _pip_env(trust)
    requirements = work / ".runner-requirements.txt"
    requirements.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
    if _pip([*pip, "-r", str(requirements)], env):
        return
    with failed.open("a", encoding="utf-8") as out:
        for pin in pins:  # one at a time: a package that no longer installs costs only itself
            if not _pip([*pip, pin], env):
                out.write(f"{pin}\n")


def _pip(argv: list[str], env: dict[str, str]) -> bool:
    proc = subprocess.run(argv, env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    return proc.returncode == 0


def _rebase_scripts(bin_dir: Path, old: Path, new: Path) -> None:
    """Point the `#!` lines (and activate scripts) of the build folder at the folder it is renamed to."""
    old_b, new_b = str(old).encode(), str(new).encode()
    for entry in bin_dir.iterdir():
        if entry.is_symlink() or not entry.is_file():
            continue
        data = entry.read_bytes()
        if old_b in data[:4096] or entry.name.startswith("activate"):
            entry.write_bytes(data.replace(old_b, new_b))
