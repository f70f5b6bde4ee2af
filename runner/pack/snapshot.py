"""Environment snapshot: what the recorded agent ran on, so replay can rebuild it or say what differs.

Input: the agent's PATH (its interpreter and tools, not the runner's own virtualenv), the repository, the
process environment, and a key for hashing. Output: an `EnvSnapshot` and the files it writes under `env/`
in a pack (`snapshot.json`, `pip-freeze.txt`, `lockfiles/...`).

Rules: environment variables named in `allow` (the allowlist, plus those the recorder replays verbatim:
runner.recorder.envpolicy) keep their value; every other value is kept only as a keyed hash (HMAC-SHA256),
so a snapshot can show that a variable changed without holding its value. Tools that are
missing are recorded as missing, never guessed. Every probe has a short timeout. Python packages are the
interpreter's installed distributions (probed from `/`, so not the working folder's), one per name: the
first on its path, the one an import gets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "ENV_ALLOWLIST",
    "LOCKFILES",
    "REPLAYED_ENV",
    "EnvSnapshot",
    "PythonPackage",
    "console_scripts",
    "pip_requirements",
    "take",
    "write",
]

ENV_ALLOWLIST = frozenset(
    {
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "PATH",
        "SHELL",
        "TERM",
        "CI",
        "PYTHONHASHSEED",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "VIRTUAL_ENV",
        "NODE_ENV",
        "CUDA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "PIP_INDEX_URL",
        "UV_INDEX_URL",
        "HOME",
        "USER",
    }
)
# Variables that change what a program prints or does, and mean the same on any machine: recorded with every
# command (and the agent's own command) so replay sets them again. Host paths (PATH, HOME) are left out.
REPLAYED_ENV = frozenset(
    {
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "CI",
        "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "NODE_ENV",
        "OMP_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "COLUMNS",
        "NO_COLOR",
        "FORCE_COLOR",
    }
)
LOCKFILES = (
    "requirements.txt",
    "requirements.lock",
    "requirements-dev.txt",
    "constraints.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "pdm.lock",
    "conda-lock.yml",
    "environment.yml",
    "pyproject.toml",
    "package-lock.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "Cargo.lock",
    "go.sum",
    "flake.lock",
)
_TOOLS = {
    "git": ["git", "--version"],
    "make": ["make", "--version"],
    "gcc": ["gcc", "--version"],
    "clang": ["clang", "--version"],
    "rustc": ["rustc", "--version"],
    "node": ["node", "--version"],
    "npm": ["npm", "--version"],
    "go": ["go", "version"],
    "java": ["java", "-version"],
    "nvcc": ["nvcc", "--version"],
    "docker": ["docker", "--version"],
}
_PIP_INSPECT = (
    "import json, importlib.metadata as m, hashlib, sys\n"
    "out, seen = [], set()\n"
    "for d in m.distributions():\n"
    "    name = d.metadata['Name']\n"
    "    key = (name or '').lower().replace('_', '-').replace('.', '-')\n"
    "    if not name or key in seen: continue\n"
    "    seen.add(key)\n"
    "    direct = d.read_text('direct_url.json') or ''\n"
    "    record = d.read_text('RECORD') or ''\n"
    "    scripts = sorted({e.name for e in d.entry_points if e.group in ('console_scripts', 'gui_scripts')})\n"
    "    out.append([name, d.version, direct, hashlib.sha256(record.encode()).hexdigest(), scripts])\n"
    "print(json.dumps({'python': sys.version.split()[0], 'implementation': sys.implementation.name,"
    " 'executable': sys.executable, 'packages': sorted(out, key=lambda p: p[0].lower())}))\n"
)


@dataclass(frozen=True)
class PythonPackage:
    name: str
    version: str
    editable: bool = False
    direct_url: str | None = None  # VCS or local path installs: not reproducible from an index
    record_sha256: str = ""  # a fingerprint of the installed files, from the dist-info RECORD
    scripts: tuple[str, ...] = ()  # its console (and gui) scripts


@dataclass(frozen=True)
class EnvSnapshot:
    os: dict[str, str]
    python: dict[str, str] | None
    packages: tuple[PythonPackage, ...]
    tools: dict[str, str | None]
    container: dict[str, str] | None
    gpu: str | None
    env: dict[str, str]  # allowlisted values verbatim, the rest as "hmac-sha256:<hex>"
    lockfiles: tuple[str, ...] = ()
    git: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, str] = field(default_factory=dict)  # model, logical count, flags that change numerics

    @property
    def snapshot_id(self) -> str:
        body = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(body).hexdigest()[:16]


def _probe(argv: list[str], path: str | None, timeout: float = 10) -> str | None:
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else None


def _python(path: str | None) -> tuple[dict[str, str] | None, tuple[PythonPackage, ...]]:
    exe = shutil.which("python3", path=path) or shutil.which("python", path=path)
    if exe is None:
        return None, ()
    try:
        # From `/`: a `python -c` run in the repository would count the repository's own *.egg-info (an
        # unpacked sdist has one) as installed, beside the installed copy of the same package.
        proc = subprocess.run(
            [exe, "-c", _PIP_INSPECT], capture_output=True, text=True, timeout=60, check=True, cwd="/"
        )
        data = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"executable": exe, "version": "unknown"}, ()
    packages = []
    for name, version, direct, record_hash, scripts in data["packages"]:
        info = json.loads(direct) if direct else {}
        editable = bool(info.get("dir_info", {}).get("editable"))
        packages.append(
            PythonPackage(
                name, version, editable, info.get("url") if info else None, record_hash, tuple(scripts)
            )
        )
    python = {"version": data["python"], "implementation": data["implementation"], "executable": exe}
    return python, tuple(packages)


def _container() -> dict[str, str] | None:
    """Best effort: are we inside a container, and which image? (The engine knows; we may not.)"""
    markers = {}
    if Path("/.dockerenv").exists():
        markers["runtime"] = "docker"
    try:
        cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        cgroup = ""
    if match := re.search(r"(?:docker|containerd|cri-containerd)[-/]([0-9a-f]{64})", cgroup):
        markers["container_id"] = match.group(1)
    if image := os.environ.get("RUNNER_IMAGE_DIGEST"):
        markers["image"] = image
    return markers or None


def _cpu() -> dict[str, str]:
    info = {"count": str(os.cpu_count() or 0), "arch": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name in ("model name", "Model") and "model" not in info:
            info["model"] = value.strip()
        elif name == "flags" and "simd" not in info:
            # Vector extensions decide which kernels numeric libraries pick, and so their rounding.
            flags = set(value.split())
            info["simd"] = " ".join(
                f for f in ("sse4_2", "avx", "avx2", "avx512f", "fma", "neon") if f in flags
            )
    return info


def _keyed(key: bytes, value: str) -> str:
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def take(
    environ: dict[str, str], key: bytes, repo: Path | None = None, allow: frozenset[str] = ENV_ALLOWLIST
) -> EnvSnapshot:
    """Snapshot the environment a command would see when started with `environ`."""
    path = environ.get("PATH")
    python, packages = _python(path)
    uname = platform.uname()
    os_info = {"system": uname.system, "release": uname.release, "machine": uname.machine}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            if k in {"ID", "VERSION_ID", "PRETTY_NAME"}:
                os_info[k.lower()] = v.strip('"')
    except OSError:
        pass
    lockfiles: tuple[str, ...] = ()
    if repo is not None:
        lockfiles = tuple(name for name in LOCKFILES if (repo / name).is_file())
    return EnvSnapshot(
        os=os_info,
        python=python,
        packages=packages,
        tools={name: _probe(argv, path) for name, argv in sorted(_TOOLS.items())},
        container=_container(),
        gpu=_probe(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], path),
        cpu=_cpu(),
        env={k: (v if k in allow else _keyed(key, v)) for k, v in sorted(environ.items())},
        lockfiles=lockfiles,
    )


def console_scripts(snapshot: EnvSnapshot) -> dict[str, str]:
    """Console script name -> the recorded package that installs it."""
    return {script: p.name for p in snapshot.packages for script in p.scripts}


def pip_requirements(snapshot: EnvSnapshot) -> str:
    """`pip freeze`-style lines for what an index can reinstall; editable and URL installs are left out."""
    lines = [f"{p.name}=={p.version}" for p in snapshot.packages if not p.editable and p.direct_url is None]
    return "".join(f"{line}\n" for line in lines)


def write(snapshot: EnvSnapshot, env_dir: Path, repo: Path | None = None) -> list[str]:
    """Write the snapshot's files under `env_dir`; return their names relative to it."""
    env_dir.mkdir(parents=True, exist_ok=True)
    (env_dir / "snapshot.json").write_text(json.dumps(asdict(snapshot), indent=2, sort_keys=True) + "\n")
    (env_dir / "pip-freeze.txt").write_text(pip_requirements(snapshot))
    written = ["snapshot.json", "pip-freeze.txt"]
    if repo is not None:
        for name in snapshot.lockfiles:
            target = env_dir / "lockfiles" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / name, target)
            written.append(f"lockfiles/{name}")
    return written
