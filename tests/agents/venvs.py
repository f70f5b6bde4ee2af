"""Cached virtualenvs of the third-party agents the acceptance tests record, one per agent and version.

Input: an `AgentSpec` (its PyPI requirement, pinned, and the extra packages its checks need). Output: the
`bin` folder of `~/.cache/runner-test-agents/<name>-<version>/` (or under $RUNNER_TEST_AGENTS), created
once with pip from the package registry and reused after. Rules: never the runner's own virtualenv; a
venv is complete only once its `.complete` marker exists, so an interrupted install is redone.
Also runnable: `python -m tests.agents.venvs` creates every venv (the Makefile's `test-agents` target).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AGENTS", "LLM", "MINI_SWE_AGENT", "AgentSpec", "ensure", "source_package"]


@dataclass(frozen=True)
class AgentSpec:
    name: str
    version: str
    extra: tuple[str, ...] = ("pytest==8.3.5",)  # the checks run `python -m pytest` with the agent's python


LLM = AgentSpec("llm", "0.36")
MINI_SWE_AGENT = AgentSpec("mini-swe-agent", "2.4.6")
AGENTS = (LLM, MINI_SWE_AGENT)


def _cache() -> Path:
    return Path(os.environ.get("RUNNER_TEST_AGENTS", Path.home() / ".cache" / "runner-test-agents"))


def _pip(*args: str, cwd: Path | None = None) -> None:
    cert = ["--cert", os.environ["SSL_CERT_FILE"]] if os.environ.get("SSL_CERT_FILE") else []
    subprocess.run(
        [*args[:1], "-m", "pip", *args[1:], "-q", "--disable-pip-version-check", *cert],
        check=True, capture_output=True, timeout=900, cwd=cwd,
    )  # fmt: skip


def ensure(spec: AgentSpec) -> Path:
    """The `bin` folder of the agent's cached virtualenv, created if missing."""
    venv = _cache() / f"{spec.name}-{spec.version}"
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        _pip(str(venv / "bin" / "python"), "install", f"{spec.name}=={spec.version}", *spec.extra)
        (venv / ".complete").write_text(f"{spec.name}=={spec.version}\n")
    return venv / "bin"


def source_package(name: str, version: str) -> Path:
    """The unpacked source distribution of `name==version` from PyPI (a real repository with its tests)."""
    root = _cache() / "src"
    folder = root / f"{name}-{version}"
    if not (folder / ".complete").is_file():
        root.mkdir(parents=True, exist_ok=True)
        _pip(
            sys.executable,
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(root),
        )
        shutil.rmtree(folder, ignore_errors=True)
        shutil.unpack_archive(str(root / f"{name}-{version}.tar.gz"), str(root))
        (folder / ".complete").write_text("")
    return folder


if __name__ == "__main__":
    for agent in AGENTS:
        print(ensure(agent))
    print(source_package("six", "1.16.0"))
