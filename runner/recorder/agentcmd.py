"""The agent's command in a form that runs inside the replay image, and its own files from outside the repo.

Inputs: the agent's argv as typed, its working folder, the repository root, the console scripts of the
recorded Python packages, and the files the user names (`--capture-file`). Output: a `CommandPlan`: the
rewritten argv, what was rewritten, and the files to store (`agent/files/NNNN-<name>`, each with the
path it goes back to).
Rules:
- An interpreter path in argv[0] (`/usr/bin/python3.11`, `~/.venv/bin/python`) becomes `python`; a console
  script of a recorded package (`/home/u/.venv/bin/mini`) becomes its bare name (`console_script`).
- The script of `python [options] SCRIPT` (or an executable script in argv[0]) outside the repository is
  stored and goes back at its absolute path; inside the repository, an absolute path becomes relative to
  the working folder (the repository is restored elsewhere). A script whose `#!` names Python is started
  as `python SCRIPT`, since the interpreter it names is of this machine.
- Files are read before the agent starts (what the agent read, not what it left), up to `MAX_FILE` bytes
  each; a named file that is missing, a folder or too large is a usage error, a script too large is
  left out with a warning. Paths under the home folder go back as `~/...` (the replaying user's home).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from runner.errors import UsageError

if TYPE_CHECKING:  # imported by `plan`, once the agent runs
    from runner.pack.model import AgentFile

__all__ = ["MAX_FILE", "CommandPlan", "StoredFile", "plan", "read_capture_files"]

MAX_FILE = 1 << 20
_PYTHON = re.compile(r"python[0-9]*(\.[0-9]+)?|pypy[0-9]*(\.[0-9]+)?")
_NO_SCRIPT = ("-c", "-m")
_TAKES_VALUE = ("-W", "-X", "--check-hash-based-pycs")


@dataclass(frozen=True)
class StoredFile:
    file: AgentFile
    data: bytes


@dataclass(frozen=True)
class CommandPlan:
    argv: tuple[str, ...]
    argv_recorded: tuple[str, ...]  # empty when argv is unchanged
    console_script: str | None
    files: tuple[StoredFile, ...]
    warnings: tuple[str, ...]


def _member(index: int, path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+=@-]", "_", path.name)[:200] or "file"
    return f"agent/files/{index:04d}-{name}"


def _home_form(path: Path) -> str:
    home = os.environ.get("HOME")
    if home and home != "/":
        try:
            return "~/" + path.relative_to(Path(home)).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def read_capture_files(names: Sequence[str]) -> list[tuple[str, bytes]]:
    """The files named by `--capture-file` as (path to put back, bytes); UsageError (exit 2) for a file that
    is missing, not a regular file, unreadable or over MAX_FILE bytes."""
    out: list[tuple[str, bytes]] = []
    for name in names:
        path = Path(os.path.normpath(Path(os.path.expanduser(name)).absolute()))
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise UsageError(f"--capture-file {name}: {what}; name a regular file")
        size = path.stat().st_size
        if size > MAX_FILE:
            raise UsageError(
                f"--capture-file {name}: {size:,} bytes, over the {MAX_FILE:,}-byte limit for captured files"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UsageError(f"--capture-file {name}: cannot read it ({e.strerror})") from None
        out.append((_home_form(path), data))
    return out


def _script_index(argv: Sequence[str]) -> int | None:
    """Where the script is in `python [options] SCRIPT ...`; None for -c, -m, stdin or no argument."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1 if i + 1 < len(argv) else None
        if arg == "-" or arg.startswith(_NO_SCRIPT):
            return None
        if not arg.startswith("-"):
            return i
        i += 2 if arg in _TAKES_VALUE else 1
    return None


def _shebang(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def plan(
    argv: Sequence[str],
    *,
    cwd: Path,
    root: Path,
    console_scripts: Mapping[str, str],
    capture: Sequence[tuple[str, bytes]] = (),
) -> CommandPlan:
    """Rewrite `argv` for the replay image and collect the agent's files (see the module docstring)."""
    from runner.pack.model import AgentFile

    root = root.resolve()
    new = list(argv)
    console: str | None = None
    warnings: list[str] = []
    files: list[StoredFile] = []

    def store(path: Path, role: Literal["script", "config"]) -> bool:
        size = path.stat().st_size
        if size > MAX_FILE:
            warnings.append(
                f"the agent's script {path} ({size:,} bytes) is over the {MAX_FILE:,}-byte limit and was not "
                "stored; replay --rerun-agent will not find it (move it into the repository)"
            )
            return False
        agent_file = AgentFile(path.as_posix(), _member(len(files) + 1, path), role)
        files.append(StoredFile(agent_file, path.read_bytes()))
        return True

    def local(arg: str) -> tuple[Path, str | None] | None:
        """The file `arg` names and its path relative to cwd when inside the repository; None if no file."""
        path = Path(os.path.normpath(cwd.absolute() / os.path.expanduser(arg)))
        if not path.is_file():
            return None
        try:
            path.resolve().relative_to(root)
        except ValueError:
            return path, None
        return path, os.path.relpath(path, cwd)

    head = Path(argv[0]).name
    found = local(argv[0]) if "/" in argv[0] else None
    script_at: int | None = None
    if _PYTHON.fullmatch(head) and ("/" in argv[0] or "." in head):
        new[0] = "python"
    elif _PYTHON.fullmatch(head):
        pass
    elif found is not None and found[1] is None and head in console_scripts:
        new[0], console = head, head
    elif found is not None:
        script_at = 0
    if _PYTHON.fullmatch(head):
        script_at = _script_index(argv)
    if script_at is not None and script_at < len(argv):
        hit = local(argv[script_at])
        if hit is not None:
            path, inside = hit
            if inside is not None:
                new[script_at] = inside if Path(argv[script_at]).is_absolute() else argv[script_at]
            elif store(path, "script"):
                new[script_at] = path.as_posix()
                if script_at == 0 and _PYTHON.search(_shebang(path) or ""):
                    new.insert(0, "python")
    for shown, data in capture:
        agent_file = AgentFile(shown, _member(len(files) + 1, Path(shown)), "config")
        files.append(StoredFile(agent_file, data))
    changed = tuple(new) != tuple(argv)
    return CommandPlan(tuple(new), tuple(argv) if changed else (), console, tuple(files), tuple(warnings))
