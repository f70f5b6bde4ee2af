"""Golden task files: the YAML a team keeps per task, validated against the schema shipped beside this module.

Inputs: a task file (YAML, `task.schema.json`). Outputs: a frozen `GoldenTask`.
Rules:
- YAML is read with `yaml.safe_load` only, from at most 1 MiB, and anchors/aliases are refused, so a small file
  cannot expand into a huge tree.
- The schema is the structural truth; a bad file is one UsageError line naming the file, the field as a path
  and what was expected, e.g. `t.yaml: expect.max_model_calls: expected integer, got 'three'`.
- Checks the schema cannot express run right after it: `input.files` names stay inside the workspace.
- Relative `input.repo` paths are resolved against the task file's folder.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from runner import schemas
from runner.errors import UsageError

__all__ = ["MAX_TASK_BYTES", "GoldenTask", "TaskExpect", "TaskInput", "load_task", "load_tasks", "schema"]

MAX_TASK_BYTES = 1 << 20


@dataclass(frozen=True)
class TaskInput:
    repo: Path | None = None  # None: the repository given on the command line
    commit: str | None = None  # None: its HEAD
    prompt: str = ""
    failing_test: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)  # written into the workspace before the agent
    checks: tuple[str, ...] = ()
    timeout_s: float | None = None

    @property
    def check_commands(self) -> tuple[str, ...]:
        """The commands recorded after the agent: `checks`, else pytest on the failing test, else none."""
        if self.checks:
            return self.checks
        if self.failing_test:
            return (f"python -m pytest -q {shlex.quote(self.failing_test)}",)
        return ()


@dataclass(frozen=True)
class TaskExpect:
    patch_contains: tuple[str, ...] = ()
    patch_not_contains: tuple[str, ...] = ()
    tests_pass: bool | None = None
    files_changed: tuple[str, ...] | None = None
    max_files_changed: int | None = None
    max_model_calls: int | None = None
    max_http_calls: int | None = None
    max_duration_s: float | None = None
    agent_exit_code: int | None = None


@dataclass(frozen=True)
class GoldenTask:
    name: str
    seed: int
    temperature: float
    input: TaskInput
    expect: TaskExpect
    source: Path
    description: str = ""

    def as_json(self) -> str:
        """The task as the agent reads it from RUNNER_TASK_FILE (docs/golden.md)."""
        doc = {
            "name": self.name,
            "seed": self.seed,
            "temperature": self.temperature,
            "prompt": self.input.prompt,
            "failing_test": self.input.failing_test,
            "files": dict(self.input.files),
            "checks": list(self.input.check_commands),
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@cache
def schema() -> dict[str, Any]:
    text = resources.files("runner.golden").joinpath("task.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def load_tasks(paths: Iterable[Path]) -> list[GoldenTask]:
    """Every task file, all validated before any is used; two tasks with one name are refused."""
    tasks = [load_task(p) for p in paths]
    seen: dict[str, Path] = {}
    for t in tasks:
        if t.name in seen:
            raise UsageError(f"{t.source}: name: {t.name!r} is already the name of {seen[t.name]}")
        seen[t.name] = t.source
    return tasks


def load_task(path: Path) -> GoldenTask:
    """Read and validate one task file; UsageError (one line: file, field, what was expected) if bad."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TASK_BYTES + 1)
    except OSError as e:
        raise UsageError(f"{path}: cannot read the task file ({e.strerror})") from None
    if len(raw) > MAX_TASK_BYTES:
        raise UsageError(f"{path}: larger than {MAX_TASK_BYTES} bytes; is this a golden task file?")
    try:
        text = raw.decode("utf-8")
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise UsageError(f"{path}: YAML aliases are not allowed in a task file")
        data = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: (top level): expected a mapping with name, seed, temperature, input, expect"
        )
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        raise UsageError(f"{path}: {schemas.describe(error, _WORDS)}")
    return _from_dict(data, Path(path))


# What the schema's pattern and oneOf mean, for the one-line error.
_WORDS = {
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$": "letters, digits, '.', '_' or '-' (at most 100)",
    "oneOf": "a non-empty string or list of strings",
}


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _from_dict(data: dict[str, Any], source: Path) -> GoldenTask:
    inp: dict[str, Any] = data["input"]
    for name in inp.get("files", {}):
        pure = PurePosixPath(name)
        if not name or pure.is_absolute() or ".." in pure.parts or pure.parts[:1] == (".git",):
            raise UsageError(
                f"{source}: input.files: expected a relative path inside the workspace, got {name!r}"
            )
    repo = Path(inp["repo"]) if "repo" in inp else None
    if repo is not None and not repo.is_absolute():
        repo = source.parent / repo
    exp: dict[str, Any] = data["expect"]
    changed = exp.get("files_changed")
    return GoldenTask(
        name=data["name"],
        seed=data["seed"],
        temperature=float(data["temperature"]),
        description=data.get("description", ""),
        source=source,
        input=TaskInput(
            repo=repo,
            commit=inp.get("commit"),
            prompt=inp.get("prompt", ""),
            failing_test=inp.get("failing_test"),
            files=dict(inp.get("files", {})),
            checks=tuple(inp.get("checks", ())),
            timeout_s=inp.get("timeout_s"),
        ),
        expect=TaskExpect(
            patch_contains=_texts(exp.get("patch_contains")),
            patch_not_contains=_texts(exp.get("patch_not_contains")),
            tests_pass=exp.get("tests_pass"),
            files_changed=tuple(sorted(changed)) if changed is not None else None,
            max_files_changed=exp.get("max_files_changed"),
            max_model_calls=exp.get("max_model_calls"),
            max_http_calls=exp.get("max_http_calls"),
            max_duration_s=exp.get("max_duration_s"),
            agent_exit_code=exp.get("agent_exit_code"),
        ),
    )
