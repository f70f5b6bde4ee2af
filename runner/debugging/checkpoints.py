"""Checkpoints: an agent's state at a span, the spans up to it, and the workspace tree; files and diffs.

Inputs: an agent object (``get_state()``/``load_state()``, else its ``__dict__``), a `Trace` and a span id.
Outputs: `Checkpoint` values, checkpoint files, `CheckpointDiff` values, and agents rebuilt from checkpoints.

Rules:
- A checkpoint file is JSON ("format": "runner.checkpoint", "format_version": 1), written to a temp file
  and renamed. Unknown formats and versions are refused.
- State is typed JSON (see runner.typedjson). Pickle is used only with ``allow_pickle=True`` when saving
  AND loading; loading reads the whole file as JSON and looks for pickle payloads before decoding anything,
  never unpickles by default and never imports a module the file names.
- A checkpoint file is a stranger's input and importing the agent module it names runs code: rebuilding an
  agent imports that module only when it is already imported or the caller allows it by name
  (``allowed_modules``); otherwise it is refused, and nothing of the module runs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from runner import __version__, gitcmd, typedjson
from runner.errors import DebugError
from runner.observability import Span, Trace, write_atomic

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointDiff",
    "CheckpointManager",
    "StateChange",
    "WorkspaceState",
    "capture_workspace",
    "compare_checkpoints",
    "import_attr",
    "rehydrate_agent",
    "upstream",
]

CHECKPOINT_FORMAT = "runner.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 1 << 30

# ---------------------------------------------------------------------------------------------- values


@dataclasses.dataclass(frozen=True)
class WorkspaceState:
    """The workspace at checkpoint time: a git tree holding tracked and untracked (not ignored) files."""

    repo: str
    head: str | None
    tree: str


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: str
    agent_class_name: str | None
    agent_module: str | None
    agent_state: Any
    trace: Trace
    span_id: str
    timestamp: float
    version: str = __version__
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    workspace: WorkspaceState | None = None

    @property
    def span(self) -> Span:
        return self.trace.get_span(self.span_id)

    def seed(self, stream: str) -> int:
        """A 64-bit seed for one named stream, derived from this checkpoint's identity."""
        text = f"{self.checkpoint_id}/{self.trace.trace_id}/{self.span_id}/{stream}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclasses.dataclass(frozen=True)
class StateChange:
    path: str
    kind: Literal["added", "removed", "changed"]
    before: Any
    after: Any


@dataclasses.dataclass(frozen=True)
class CheckpointDiff:
    """What changed from checkpoint `a` to the later checkpoint `b`."""

    changes: tuple[StateChange, ...]
    spans_between: tuple[Span, ...]
    same_trace: bool
    workspace_changed: bool | None  # None when either checkpoint has no workspace tree


# ---------------------------------------------------------------------------------------------- workspace


def capture_workspace(repo: str | os.PathLike[str] | None = None) -> WorkspaceState | None:
    """The git tree of the working copy (tracked + untracked, not ignored), or None outside a repository.

    `git add -A` runs against a temporary copy of the index, so the user's index and HEAD are untouched.
    A tree hash (rather than HEAD plus a hash of the dirty diff) names the exact content, can be diffed
    against another checkpoint's tree (`git diff TREE_A TREE_B`) and restored (`git read-tree`); its cost
    is a few unreferenced blobs in the object store, which git gc removes in time.
    """
    where = str(repo) if repo is not None else os.getcwd()
    if shutil.which("git") is None:
        if repo is not None:
            raise DebugError("git is not installed, so the workspace tree cannot be recorded")
        return None
    try:
        root = gitcmd.output(where, "rev-parse", "--show-toplevel", error=DebugError).strip()
    except DebugError:
        if repo is not None:
            raise
        return None
    head = gitcmd.output(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() or None
    real_index = Path(root, gitcmd.output(root, "rev-parse", "--git-path", "index", error=DebugError).strip())
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        index = Path(tmp, "index")
        if real_index.is_file():
            shutil.copyfile(real_index, index)  # keeps git's stat cache, so unchanged files are not rehashed
        env = {"GIT_INDEX_FILE": str(index)}
        gitcmd.output(root, "add", "-A", env=env, error=DebugError)
        tree = gitcmd.output(root, "write-tree", env=env, error=DebugError).strip()
    return WorkspaceState(repo=root, head=head, tree=tree)


# ---------------------------------------------------------------------------------------------- checkpoints


def upstream(trace: Trace, span_id: str) -> Trace:
    """The spans that started before the checkpoint span ended (all of them while it is still open)."""
    span = trace.get_span(span_id)
    if span.end_time_unix_nano is None:
        return trace
    cutoff = span.end_time_unix_nano
    return Trace(trace.trace_id, tuple(s for s in trace.spans if s.start_time_unix_nano <= cutoff))


def _capture_state(agent: object) -> Any:
    get_state = getattr(agent, "get_state", None)
    if callable(get_state):
        state = get_state()
    else:
        try:
            state = dict(vars(agent))
        except TypeError as e:
            raise DebugError(
                f"{type(agent).__qualname__} has no __dict__; give it get_state()/load_state()"
            ) from e
    try:
        return copy.deepcopy(state)  # later changes to the live agent must not reach the checkpoint
    except Exception as e:  # deepcopy raises whatever the objects' __reduce__ raises
        raise DebugError(
            f"the state of {type(agent).__qualname__} cannot be copied ({e}); make get_state() return "
            "plain data (no clients, locks or open files)"
        ) from e


class CheckpointManager:
    """Creates checkpoints and saves/loads them in `checkpoint_dir`."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str] = ".checkpoints") -> None:
        self.checkpoint_dir = Path(checkpoint_dir)

    def create_checkpoint(
        self,
        agent: object,
        trace: Trace,
        span_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        repo: str | os.PathLike[str] | None = None,
        capture_git: bool = True,
    ) -> Checkpoint:
        """Snapshot `agent` at `span_id`: its state, the spans up to that span, and the workspace tree.

        The workspace is the git repository at `repo`, else the one holding the current directory (none
        when the current directory is not in a repository).
        """
        cls = type(agent)
        return Checkpoint(
            checkpoint_id=f"ckpt_{secrets.token_hex(6)}",
            agent_class_name=cls.__qualname__,
            agent_module=cls.__module__,
            agent_state=_capture_state(agent),
            trace=upstream(trace, span_id),
            span_id=span_id,
            timestamp=time.time(),
            metadata=dict(metadata or {}),
            workspace=capture_workspace(repo) if capture_git else None,
        )

    def save_checkpoint(
        self, checkpoint: Checkpoint, filename: str | None = None, *, allow_pickle: bool = False
    ) -> Path:
        """Write `checkpoint` under `checkpoint_dir` (atomically) and return the path."""
        name = filename or f"{checkpoint.trace.trace_id[:8]}_{checkpoint.checkpoint_id}.ckpt"
        path = self.checkpoint_dir / name
        document = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "checkpoint_id": checkpoint.checkpoint_id,
            "version": checkpoint.version,
            "timestamp": checkpoint.timestamp,
            "span_id": checkpoint.span_id,
            "agent_class_name": checkpoint.agent_class_name,
            "agent_module": checkpoint.agent_module,
            "agent_state": typedjson.encode(
                checkpoint.agent_state, allow_pickle=allow_pickle, path="agent_state"
            ),
            "metadata": typedjson.encode(checkpoint.metadata, path="metadata"),
            "workspace": dataclasses.asdict(checkpoint.workspace) if checkpoint.workspace else None,
            "trace": {
                "trace_id": checkpoint.trace.trace_id,
                "spans": [s.to_dict() for s in checkpoint.trace.spans],
            },
        }
        try:
            # One span or top-level field per line keeps files diffable; the C encoder keeps saving fast.
            write_atomic(path, _document_text(document))
        except OSError as e:
            raise DebugError(f"cannot write checkpoint {path}: {e}") from e
        return path

    def load_checkpoint(self, path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Checkpoint:
        """Read a checkpoint file. A bare file name is also looked up in `checkpoint_dir`."""
        file = Path(path)
        if not file.exists() and not file.is_absolute() and (self.checkpoint_dir / file).exists():
            file = self.checkpoint_dir / file
        document = _read_checkpoint_document(file)
        return _checkpoint_from_document(document, file, allow_pickle)


def _document_text(document: dict[str, Any]) -> str:
    lines = [
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in document.items() if k != "trace"
    ]
    trace = document["trace"]
    spans = ",\n  ".join(json.dumps(s, ensure_ascii=False) for s in trace["spans"])
    lines.append(f'"trace": {{"trace_id": {json.dumps(trace["trace_id"])}, "spans": [\n  {spans}]}}')
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _read_checkpoint_document(file: Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as e:
        raise DebugError(f"cannot read checkpoint {file}: {e}") from e
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise DebugError(f"{file} is larger than {MAX_CHECKPOINT_BYTES} bytes; refusing to load it")
    if raw[:1] == b"\x80":  # pickle protocol 2+ opcode: a raw pickle file, as other tools write
        would_import = ", ".join(typedjson.pickle_globals(raw)) or "nothing"
        raise DebugError(
            f"{file} is a raw pickle file (would import: {would_import}), not a runner checkpoint; "
            "refusing to load it, since unpickling runs code"
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8, or a 4,300+ digit integer
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0]
        raise DebugError(f"{file} is not a runner checkpoint (not JSON: {reason})") from e
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise DebugError(f'{file} is not a runner checkpoint (no "format": "{CHECKPOINT_FORMAT}")')
    version = document.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise DebugError(
            f"{file} has checkpoint format_version {version!r}; this runner reads {CHECKPOINT_FORMAT_VERSION}: "
            "use the runner version that wrote it"
        )
    return document


def _checkpoint_from_document(document: dict[str, Any], file: Path, allow_pickle: bool) -> Checkpoint:
    try:
        return _checkpoint(document, file, allow_pickle)
    except typedjson.PickleRefused:  # name every payload the file holds, and what each would import
        pickles = typedjson.find_pickles(document.get("agent_state"), "agent_state")
        pickles += typedjson.find_pickles(document.get("metadata"), "metadata")
        where = "; ".join(
            f"{p} (would import {', '.join(typedjson.pickle_globals(b)) or 'nothing'})" for p, b in pickles
        )
        raise DebugError(
            f"{file} holds {len(pickles)} pickle payload(s): {where}. Refusing to unpickle: load with "
            "allow_pickle=True only if you trust where the file came from"
        ) from None


def _checkpoint(document: dict[str, Any], file: Path, allow_pickle: bool) -> Checkpoint:
    """The checkpoint a document holds; PickleRefused at a pickle payload without `allow_pickle`."""
    try:
        trace_doc = document["trace"]
        trace_id = trace_doc["trace_id"]
        spans = tuple(Span.from_dict(s, f"{file}: trace") for s in trace_doc["spans"])
        if any(s.trace_id != trace_id for s in spans):
            raise DebugError(f"{file}: a span of the checkpoint trace belongs to another trace")
        w = document.get("workspace")
        workspace = WorkspaceState(_str(w["repo"]), _opt_str(w.get("head")), _str(w["tree"])) if w else None
        checkpoint = Checkpoint(
            checkpoint_id=_str(document["checkpoint_id"]),
            agent_class_name=_opt_str(document.get("agent_class_name")),
            agent_module=_opt_str(document.get("agent_module")),
            agent_state=typedjson.decode(
                document["agent_state"], allow_pickle=allow_pickle, path="agent_state"
            ),
            trace=Trace(_str(trace_id), spans),
            span_id=_str(document["span_id"]),
            timestamp=float(document["timestamp"]),
            version=_str(document.get("version", "")),
            metadata=typedjson.decode(document.get("metadata") or {}, path="metadata"),
            workspace=workspace,
        )
        checkpoint.trace.get_span(checkpoint.span_id)
    except typedjson.PickleRefused:
        raise
    except DebugError as e:
        raise DebugError(f"{file}: {e}") from e
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise DebugError(f"{file}: damaged checkpoint ({type(e).__name__}: {e})") from e
    return checkpoint


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


# ---------------------------------------------------------------------------------------------- comparison


def compare_checkpoints(a: Checkpoint, b: Checkpoint) -> CheckpointDiff:
    """State differences from `a` to `b`, key by key down nested paths, and the spans run in between."""
    changes: list[StateChange] = []
    _diff(a.agent_state, b.agent_state, "", changes)
    same_trace = a.trace.trace_id == b.trace.trace_id
    seen = {s.span_id for s in a.trace.spans}
    between = tuple(s for s in b.trace.spans if s.span_id not in seen) if same_trace else ()
    workspace_changed = None
    if a.workspace and b.workspace:
        workspace_changed = a.workspace.tree != b.workspace.tree
    return CheckpointDiff(tuple(changes), between, same_trace, workspace_changed)


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _diff(a: Any, b: Any, path: str, out: list[StateChange]) -> None:
    if type(a) is not type(b):
        out.append(StateChange(path or "<state>", "changed", a, b))
    elif isinstance(a, dict):
        for key in a:
            if key in b:
                _diff(a[key], b[key], _join(path, key), out)
            else:
                out.append(StateChange(_join(path, key), "removed", a[key], None))
        out.extend(StateChange(_join(path, k), "added", None, b[k]) for k in b if k not in a)
    elif isinstance(a, list | tuple):
        for i in range(max(len(a), len(b))):
            if i >= len(b):
                out.append(StateChange(_join(path, i), "removed", a[i], None))
            elif i >= len(a):
                out.append(StateChange(_join(path, i), "added", None, b[i]))
            else:
                _diff(a[i], b[i], _join(path, i), out)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type) and a != b:
        for f in dataclasses.fields(a):
            _diff(getattr(a, f.name), getattr(b, f.name), _join(path, f.name), out)
    elif a != b:
        out.append(StateChange(path or "<state>", "changed", a, b))


# ---------------------------------------------------------------------------------------------- rehydration


def import_attr(module_name: str, qualname: str, what: str) -> Any:
    """`module_name`, imported, then `qualname` looked up in it; `what` names the thing in errors."""
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise DebugError(
            f"cannot import {module_name} ({what}): {e}; run from the project root or add it to PYTHONPATH"
        ) from e
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise DebugError(f"{module_name} has no {qualname} ({what})") from e
    return obj


def rehydrate_agent(checkpoint: Checkpoint, allowed_modules: Collection[str] = ()) -> Any:
    """A new agent of the checkpoint's class holding the checkpoint's state (a copy).

    The checkpoint's module is imported only if it is already imported or named in `allowed_modules`."""
    ck = checkpoint
    if not ck.agent_module or not ck.agent_class_name:
        raise DebugError(f"checkpoint {ck.checkpoint_id} names no agent class; replay a function instead")
    if sys.modules.get(ck.agent_module) is None and ck.agent_module not in allowed_modules:
        module = ck.agent_module[:120]  # repr() below escapes control characters from the file
        raise DebugError(
            f"checkpoint {ck.checkpoint_id} names module {module!r}, which is not imported and importing "
            f"it runs its code: import it first, or pass allowed_modules=[{module!r}] if you trust the checkpoint"
        )
    cls = import_attr(ck.agent_module, ck.agent_class_name, "the checkpoint's agent class")
    if not isinstance(cls, type):
        raise DebugError(f"{ck.agent_module}.{ck.agent_class_name} is not a class")
    try:
        inspect.signature(cls).bind()
        agent = cls()
    except (TypeError, ValueError):  # the constructor needs arguments: rebuild without calling it
        agent = cast(Any, cls).__new__(cls)
    if ck.agent_state is None:  # no state was captured: a fresh agent
        return agent
    state = copy.deepcopy(ck.agent_state)
    load_state = getattr(agent, "load_state", None)
    if callable(load_state):
        try:
            load_state(state)
        except Exception as e:  # the agent's own code: any error means the state does not fit it
            raise DebugError(
                f"{cls.__qualname__}.load_state() failed on checkpoint {ck.checkpoint_id}: "
                f"{type(e).__name__}: {e}; does the state belong to this class and version?"
            ) from e
    elif isinstance(state, dict):
        agent.__dict__.update(state)
    else:
        raise DebugError(f"{cls.__qualname__} has no load_state() and the state is not a dict")
    return agent
