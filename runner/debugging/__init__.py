"""Time-travel debugging: checkpoints of agent state at a span, and replays that start from them.

Inputs: an agent object (``get_state()``/``load_state()``, else its ``__dict__``), a `Trace` (live from
`TracerProvider`, or a pack's traces.jsonl) and a span id. Outputs: `Checkpoint` values and files, replays
(plain, under pdb, or counterfactual) and `CheckpointDiff` values.

Rules:
- A checkpoint file is JSON ("format": "runner.checkpoint", "format_version": 1), written to a temp file
  and renamed. Unknown formats and versions are refused.
- State is typed JSON (see runner.typedjson). Pickle is used only with ``allow_pickle=True`` when saving
  AND loading; loading reads the whole file as JSON and looks for pickle payloads before decoding anything,
  never unpickles by default and never imports a module the file names.
- Replaying is running code by design: it imports the agent's module and the mocked import paths.
- A replay runs inside `DeterministicExecutionContext`: the clock starts at the checkpoint's timestamp and
  moves on by a fixed tick (1 ms) at each reading, so timeout loops end and durations stay positive while
  two replays still read the same values; `random` and `uuid.uuid4` are seeded from the checkpoint id and
  span id; mocked import paths serve recorded outputs in order.
- The recorded responses for a span type are the outputs of the spans of that type that start at or after
  the checkpoint span (its ancestors excluded), oldest first; taken from the checkpoint's trace, or from
  the whole trace when a trace store is given.
- `start_debugging_session` prints: it is the interactive front of this module (to the engine's stdout).
"""

from __future__ import annotations

import asyncio
import bdb
import copy
import dataclasses
import datetime as dt
import hashlib
import importlib
import inspect
import json
import os
import pdb
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

from runner import __version__, typedjson
from runner.errors import DebugError, PackError
from runner.observability import Span, Trace, TraceStore, load_trace_jsonl, write_atomic
from runner.pack import read as pack_stage

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointDiff",
    "CheckpointManager",
    "CounterfactualCall",
    "CounterfactualReport",
    "DeterministicExecutionContext",
    "MockCall",
    "ReplayEngine",
    "Responder",
    "StateChange",
    "TraceLookup",
    "WorkspaceState",
    "capture_workspace",
    "compare_checkpoints",
    "debug_pack",
    "serve_in_order",
]

CHECKPOINT_FORMAT = "runner.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 1 << 30
MAX_TRACES_BYTES = 1 << 30
DEFAULT_TICK_NS = 1_000_000
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


@dataclasses.dataclass(frozen=True)
class MockCall:
    """One call to a mocked import path, handed to a responder."""

    path: str
    index: int
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    live: Callable[..., Any]  # the original function; call it with args and kwargs as they are


class Responder(Protocol):
    def __call__(self, call: MockCall) -> Any: ...


@dataclasses.dataclass(frozen=True)
class CounterfactualCall:
    span_type: str
    path: str
    index: int
    span_id: str | None  # the recorded span this call lines up with, None past the end of the recording
    source: Literal["recorded", "live", "substitute"]
    recorded: Any
    actual: Any

    @property
    def differs(self) -> bool:
        return self.span_id is None or self.actual != self.recorded


@dataclasses.dataclass(frozen=True)
class CounterfactualReport:
    result: Any
    calls: tuple[CounterfactualCall, ...]

    @property
    def diverged(self) -> tuple[CounterfactualCall, ...]:
        return tuple(c for c in self.calls if c.differs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": typedjson.encode(self.result, lenient=True, path="result"),
            "calls": [
                {
                    "span_type": c.span_type,
                    "path": c.path,
                    "index": c.index,
                    "span_id": c.span_id,
                    "source": c.source,
                    "recorded": typedjson.encode(c.recorded, lenient=True, path="recorded"),
                    "actual": typedjson.encode(c.actual, lenient=True, path="actual"),
                    "differs": c.differs,
                }
                for c in self.calls
            ],
        }


# ---------------------------------------------------------------------------------------------- workspace


def _git(root: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DebugError(f"git {' '.join(args)} could not run in {root}: {e}") from e
    if result.returncode != 0:
        raise DebugError(f"git {' '.join(args)} failed in {root}: {result.stderr.strip()[:300]}")
    return result.stdout.strip()


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
        root = _git(where, "rev-parse", "--show-toplevel")
    except DebugError:
        if repo is not None:
            raise
        return None
    try:
        head: str | None = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    except DebugError:  # a repository without commits yet
        head = None
    real_index = Path(root, _git(root, "rev-parse", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        index = Path(tmp, "index")
        if real_index.is_file():
            shutil.copyfile(real_index, index)  # keeps git's stat cache, so unchanged files are not rehashed
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        _git(root, "add", "-A", env=env)
        tree = _git(root, "write-tree", env=env)
    return WorkspaceState(repo=root, head=head, tree=tree)


# ---------------------------------------------------------------------------------------------- checkpoints


def _upstream(trace: Trace, span_id: str) -> Trace:
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
            trace=_upstream(trace, span_id),
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DebugError(f"{file} is not a runner checkpoint (not JSON: {e})") from e
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
    pickles = typedjson.find_pickles(document.get("agent_state"), "agent_state")
    pickles += typedjson.find_pickles(document.get("metadata"), "metadata")
    if pickles and not allow_pickle:
        where = "; ".join(
            f"{p} (would import {', '.join(typedjson.pickle_globals(b)) or 'nothing'})" for p, b in pickles
        )
        raise DebugError(
            f"{file} holds {len(pickles)} pickle payload(s): {where}. Refusing to unpickle: load with "
            "allow_pickle=True only if you trust where the file came from"
        )
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
    except DebugError as e:
        raise DebugError(f"{file}: {e}") from e
    except (KeyError, TypeError, ValueError) as e:
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


# ---------------------------------------------------------------------------------------------- determinism

# Kept in a dict, not as module globals, so the module scan below never swaps our own references.
_REAL: dict[str, Any] = {
    "time": time.time,
    "time_ns": time.time_ns,
    "datetime": dt.datetime,
    "uuid4": uuid.uuid4,
}


def _fake_datetime(clock: Callable[[], int]) -> type:
    real: type[dt.datetime] = _REAL["datetime"]

    class _Meta(type):
        # Code that did `from datetime import datetime` gets this class; real datetimes must still pass
        # its isinstance checks.
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, real)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, real)

    class datetime(real, metaclass=_Meta):  # type: ignore[valid-type,misc]
        def __new__(cls, *args: Any, **kwargs: Any) -> dt.datetime:  # type: ignore[misc]
            return real(*args, **kwargs)

        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:
            return real.fromtimestamp(clock() / 1e9, tz)

        @classmethod
        def utcnow(cls) -> dt.datetime:
            return real.fromtimestamp(clock() / 1e9, dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> dt.datetime:
            return cls.now()

    datetime.__module__ = "datetime"
    return datetime


def _swap_in_modules(swaps: Mapping[int, tuple[object, object]]) -> None:
    """In every plain module namespace, replace each value that is `old` (keyed by id) with `new`."""
    for module in list(sys.modules.values()):
        if type(module) is not types.ModuleType:  # lazy modules would load on attribute access
            continue
        namespace = module.__dict__
        for name, value in list(namespace.items()):
            pair = swaps.get(id(value))
            if pair is not None and value is pair[0]:
                namespace[name] = pair[1]


class _Patch:
    """One attribute replaced on a module or class, put back by `undo`."""

    def __init__(
        self, path: str, owner: object, attr: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
    ):
        self.owner, self.attr = owner, attr
        if isinstance(owner, type):
            self.had_own = attr in vars(owner)
            raw = inspect.getattr_static(owner, attr)
            if isinstance(raw, staticmethod | classmethod):
                live = raw.__func__
                self.installed: Any = type(raw)(make(live))
            else:
                live = raw
                self.installed = make(live)
            self.old = vars(owner).get(attr)
        else:
            self.had_own = True
            self.old = live = getattr(owner, attr)
            self.installed = make(live)
        if not callable(live):
            raise DebugError(f"{path} is not a function (it is a {type(live).__name__}); mock a callable")
        setattr(owner, attr, self.installed)

    def undo(self) -> None:
        if self.had_own:
            setattr(self.owner, self.attr, self.old)
        else:
            delattr(self.owner, self.attr)


def _resolve_target(path: str) -> tuple[object, str]:
    """Import the longest module prefix of `path`, then walk attributes to the owner of the last name."""
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        raise DebugError(f"mock target {path!r} must be an import path like package.module.function")
    owner: object = None
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        try:
            owner = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
                continue
            raise DebugError(f"importing {name} for mock target {path!r} failed: {e}") from e
        break
    else:
        raise DebugError(f"mock target {path!r}: no module of it can be imported; check PYTHONPATH")
    for part in parts[cut:-1]:
        try:
            owner = getattr(owner, part)
        except AttributeError as e:
            raise DebugError(f"mock target {path!r}: {'.'.join(parts[:cut])} has no {part!r}") from e
    if not hasattr(owner, parts[-1]):
        raise DebugError(f"mock target {path!r}: {getattr(owner, '__name__', owner)} has no {parts[-1]!r}")
    return owner, parts[-1]


def serve_in_order(path: str, values: Sequence[Any], where: str) -> Responder:
    """A responder returning `values` one call after another (copies, so callers cannot alter them)."""

    def respond(call: MockCall) -> Any:
        if call.index >= len(values):
            raise DebugError(
                f"{path} was called {call.index + 1} time(s) but {where} holds {len(values)} recorded "
                f"response(s); the replay took a different path than the recording, or mocks the wrong function"
            )
        return _servable(values[call.index], path, call.index)

    return respond


def _servable(value: Any, path: str, index: int) -> Any:
    if isinstance(value, typedjson.Unrepresentable):
        raise DebugError(
            f"{path}: recorded response {index + 1} was a {value.type_name} stored only as text, so it cannot "
            "be served; record a JSON-friendly value (or a dataclass) instead"
        )
    return copy.deepcopy(value)


class DeterministicExecutionContext:
    """Freeze the sources of non-determinism for the duration of a `with` block.

    Inside: ``time.time``, ``time.time_ns``, ``datetime.datetime.now``/``utcnow``/``today`` read a clock
    that starts at the checkpoint's timestamp and advances by `tick_ns` per reading; the ``random`` module
    functions draw from a stream seeded from the checkpoint; ``uuid.uuid4`` draws from another. Names bound
    elsewhere with ``from time import time`` (and the like) are swapped too. Each import path of
    `mock_targets` returns its listed values in order. Everything is put back on exit, errors included.
    ``time.monotonic``/``perf_counter`` and ``os.urandom``/``secrets`` are left real.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        mock_targets: Mapping[str, Sequence[Any]] | None = None,
        *,
        responders: Mapping[str, Responder] | None = None,
        tick_ns: int = DEFAULT_TICK_NS,
    ) -> None:
        self.checkpoint = checkpoint
        self.tick_ns = tick_ns
        self.responders: dict[str, Responder] = {
            path: serve_in_order(path, list(values), f"mock_targets[{path!r}]")
            for path, values in (mock_targets or {}).items()
        }
        self.responders.update(responders or {})
        self.calls: dict[str, int] = {}
        self.errors: list[DebugError] = []
        self._undo: list[Callable[[], None]] = []
        self._module_mocks: list[tuple[object, object]] = []
        self._lock = threading.Lock()
        self._now_ns = int(checkpoint.timestamp * 1e9)

    def _clock(self) -> int:
        with self._lock:
            now = self._now_ns
            self._now_ns += self.tick_ns
            return now

    def __enter__(self) -> DeterministicExecutionContext:
        try:
            for path, responder in self.responders.items():
                self._mock(path, responder)
            self._swap_globals()
            state = random.getstate()
            random.seed(self.checkpoint.seed("random"))
            self._undo.append(lambda: random.setstate(state))
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def check(self) -> None:
        """Raise the first mock error, even if the replayed code caught it and went on."""
        if self.errors:
            raise DebugError(f"{self.errors[0]} (raised during the replay, caught by the replayed code)")

    def _restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _mock(self, path: str, responder: Responder) -> None:
        owner, attr = _resolve_target(path)
        self.calls[path] = 0

        def make(live: Callable[..., Any]) -> Callable[..., Any]:
            def recorded(*args: Any, **kwargs: Any) -> Any:
                with self._lock:
                    index = self.calls[path]
                    self.calls[path] = index + 1
                try:
                    return responder(MockCall(path, index, args, kwargs, live))
                except DebugError as e:
                    self.errors.append(e)  # kept in case the replayed code catches it and carries on
                    raise

            recorded.__name__ = recorded.__qualname__ = f"recorded_{attr}"
            return recorded

        patch = _Patch(path, owner, attr, make)
        self._undo.append(patch.undo)
        if not isinstance(owner, type):
            self._module_mocks.append((patch.old, patch.installed))

    def _swap_globals(self) -> None:
        """Swap the real functions for fakes in every imported module's namespace, and back on exit.

        Covers names bound with ``from time import time`` and ``from agent.llm import invoke`` (a mocked
        module function), not only attribute look-ups. The undo scans again, so a module imported while
        the context was active does not keep a fake.
        """
        uuid_rng = random.Random(self.checkpoint.seed("uuid4"))
        pairs = [
            (_REAL["time"], lambda: self._clock() / 1e9),
            (_REAL["time_ns"], self._clock),
            (_REAL["datetime"], _fake_datetime(self._clock)),
            (_REAL["uuid4"], lambda: uuid.UUID(bytes=uuid_rng.randbytes(16), version=4)),
            *self._module_mocks,
        ]
        _swap_in_modules({id(real): (real, fake) for real, fake in pairs})
        self._undo.append(lambda: _swap_in_modules({id(fake): (fake, real) for real, fake in pairs}))


# ---------------------------------------------------------------------------------------------- replay


class TraceLookup(Protocol):
    def get_trace(self, trace_id: str) -> Trace: ...


def _import_attr(module_name: str, qualname: str, what: str) -> Any:
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


class ReplayEngine:
    """Rehydrate the checkpoint's agent and re-run its code with recorded responses served back."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        trace_store: TraceLookup | None = None,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.trace = trace_store.get_trace(checkpoint.trace.trace_id) if trace_store else checkpoint.trace
        self.stdin = stdin
        self._stdout = stdout

    @property
    def stdout(self) -> IO[str]:
        return self._stdout or sys.stdout

    # -- recordings

    def recorded_spans(self, span_type: str) -> list[Span]:
        """Spans of `span_type` with a recorded output, at or after the checkpoint span, oldest first."""
        anchor = self.checkpoint.span
        ancestors = {s.span_id for s in self.checkpoint.trace.ancestors(anchor.span_id)}
        return [
            s
            for s in self.trace.spans
            if s.span_type == span_type
            and s.has_output
            and s.start_time_unix_nano >= anchor.start_time_unix_nano
            and s.span_id not in ancestors
        ]

    def recorded_responses(self, span_type: str) -> list[Any]:
        return [s.output for s in self.recorded_spans(span_type)]

    def mock_analysis(self, mock_config: Mapping[str, str]) -> list[str]:
        """Lines saying which import path serves which span type, and how many recordings each has."""
        lines = []
        for span_type, path in mock_config.items():
            count = len(self.recorded_spans(span_type))
            lines.append(
                f"  - {path} stands in for spans of type {span_type!r}: {count} recorded response(s)"
            )
            if count == 0:
                lines.append(
                    f"    WARNING: no recorded {span_type!r} output after the checkpoint; the first call fails"
                )
        return lines

    def _responders(self, mock_config: Mapping[str, str]) -> dict[str, Responder]:
        paths = list(mock_config.values())
        if len(set(paths)) != len(paths):
            raise DebugError(f"mock_config maps two span types to one import path: {dict(mock_config)}")
        where = "the trace after span {}, for type {!r},"
        return {
            path: serve_in_order(path, self.recorded_responses(t), where.format(self.checkpoint.span_id, t))
            for t, path in mock_config.items()
        }

    # -- agent

    def rehydrate_agent(self) -> Any:
        """A new agent of the checkpoint's class holding the checkpoint's state (a copy)."""
        ck = self.checkpoint
        if not ck.agent_module or not ck.agent_class_name:
            raise DebugError(f"checkpoint {ck.checkpoint_id} names no agent class; replay a function instead")
        cls = _import_attr(ck.agent_module, ck.agent_class_name, "the checkpoint's agent class")
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

    def _callable(self, function: str | Callable[..., Any]) -> tuple[Callable[..., Any], str]:
        if callable(function):
            return function, getattr(function, "__qualname__", repr(function))
        agent = self.rehydrate_agent()
        method = getattr(agent, function, None)
        if not callable(method):
            names = sorted(
                n for n in dir(type(agent)) if not n.startswith("_") and callable(getattr(agent, n))
            )
            raise DebugError(
                f"{type(agent).__qualname__} has no method {function!r}; it has: {', '.join(names)}"
            )
        return method, f"{type(agent).__qualname__}.{function}"

    # -- replays

    def replay_from_checkpoint(
        self,
        function_name: str | Callable[..., Any],
        *args: Any,
        mock_config: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call `function_name` on a rehydrated agent (or call a function) deterministically; return its result."""
        with DeterministicExecutionContext(
            self.checkpoint, responders=self._responders(mock_config or {})
        ) as ctx:
            fn, _ = self._callable(function_name)
            result = _call(fn, args, kwargs)
            ctx.check()
            return result

    def start_debugging_session(
        self,
        function_to_replay: str | Callable[..., Any],
        mock_config: Mapping[str, str] | None = None,
        input_data: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Replay under pdb, stopped at the first line of the function; print the final result."""
        args = () if input_data is None else (input_data,)
        return self.debug(function_to_replay, args, kwargs, mock_config or {})

    def debug(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        mock_config: Mapping[str, str],
    ) -> Any:
        """`start_debugging_session` with the call's positional arguments given as a sequence."""
        out, ck = self.stdout, self.checkpoint
        rule = "-" * 72
        span = ck.span
        agent = f"{ck.agent_module}.{ck.agent_class_name}" if ck.agent_class_name else "none (plain function)"
        if ck.agent_class_name and ck.agent_state is None:
            agent += " (fresh instance: no state given)"
        print("--- runner time-travel debugger ---", file=out)
        print(f"  Trace ID:    {ck.trace.trace_id}", file=out)
        print(f"  Checkpoint:  {ck.checkpoint_id} at span {span.name!r} ({span.span_id})", file=out)
        print(f"  Agent state: {agent}", file=out)
        print(
            f"  Clock:       {dt.datetime.fromtimestamp(ck.timestamp, dt.UTC).isoformat()} (+1 ms per read)",
            file=out,
        )
        print(rule, file=out)
        print("--- Pre-flight mock analysis ---", file=out)
        print(
            "\n".join(self.mock_analysis(mock_config)) or "  (no mocks: every call runs for real)", file=out
        )
        print(rule, file=out)
        responders = self._responders(mock_config)
        with DeterministicExecutionContext(ck, responders=responders) as ctx:
            fn, label = self._callable(function)
            print(f"Stopping at the start of {label}(); 'c' continues, 'q' abandons the replay.", file=out)
            out.flush()
            debugger = pdb.Pdb(stdin=self.stdin, stdout=self._stdout, skip=[__name__])
            try:
                result = _runcall(debugger, fn, args, kwargs)
                ctx.check()
            except bdb.BdbQuit:
                print(f"{rule}\n--- Replay abandoned from the debugger ---", file=out)
                return None
            except BaseException as e:
                if not isinstance(e, DebugError | KeyboardInterrupt):
                    traceback.print_exc(file=out)  # the replayed code failed: where is the point
                print(f"{rule}\n--- Replay failed: {type(e).__name__}: {e} ---", file=out)
                raise
        print(f"{rule}\n--- Replay finished. Final result: {result!r} ---", file=out)
        return result

    def counterfactual(
        self,
        function_name: str | Callable[..., Any],
        mock_config: Mapping[str, str],
        diverge_at: str,
        substitute: Mapping[str, Callable[..., Any]] | None = None,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> CounterfactualReport:
        """Serve recordings for calls whose span started before `diverge_at`; from that span on, call the
        `substitute` for the span type (with the call's arguments) or else the real function, and report
        each call's recorded and actual output."""
        pivot = self.trace.get_span(diverge_at).start_time_unix_nano
        subs = dict(substitute or {})
        calls: list[CounterfactualCall] = []

        def responder(span_type: str, path: str) -> Responder:
            spans = self.recorded_spans(span_type)

            def respond(call: MockCall) -> Any:
                span = spans[call.index] if call.index < len(spans) else None
                recorded = span.output if span is not None else None
                source: Literal["recorded", "live", "substitute"]
                if span is not None and span.start_time_unix_nano < pivot:
                    source, actual = "recorded", _servable(recorded, path, call.index)
                elif span_type in subs:
                    source, actual = "substitute", subs[span_type](*call.args, **call.kwargs)
                else:
                    source, actual = "live", call.live(*call.args, **call.kwargs)
                calls.append(
                    CounterfactualCall(
                        span_type, path, call.index, span.span_id if span else None, source, recorded, actual
                    )
                )
                return actual

            return respond

        self._responders(mock_config)  # same validation as the other replays
        responders = {path: responder(t, path) for t, path in mock_config.items()}
        with DeterministicExecutionContext(self.checkpoint, responders=responders) as ctx:
            fn, _ = self._callable(function_name)
            result = _call(fn, args, dict(kwargs or {}))
            ctx.check()
        return CounterfactualReport(result, tuple(calls))


def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call `fn`; a coroutine it returns is run to completion in a new event loop."""
    result = fn(*args, **kwargs)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def _runcall(
    debugger: pdb.Pdb, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Run `fn` under `debugger`, stopped at its first line (for a coroutine function too)."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None or not inspect.iscoroutinefunction(inspect.unwrap(fn)):
        return debugger.runcall(fn, *args, **kwargs)
    # Stepping from the call would stop inside asyncio first: break on the coroutine's first line instead,
    # the way `b function` does, and let everything before it run untraced by the prompt.
    debugger.reset()
    debugger.set_break(code.co_filename, code.co_firstlineno, temporary=True, funcname=code.co_name)
    debugger.botframe = sys._getframe()
    debugger.set_continue()
    sys.settrace(debugger.trace_dispatch)
    try:
        return asyncio.run(fn(*args, **kwargs))
    except bdb.BdbQuit:
        return None
    finally:
        debugger.quitting = True
        sys.settrace(None)


# ---------------------------------------------------------------------------------------------- packs


def _read_pack_trace(source: Path, span_id: str) -> Trace:
    """The trace holding `span_id`, from a traces.jsonl file or from a pack (unpacked safely and verified)."""
    try:
        with open(source, "rb") as f:
            is_pack = f.read(4) == _ZSTD_MAGIC
    except OSError as e:
        raise PackError(f"cannot read {source}: {e.strerror}; give a repro pack or a traces.jsonl") from e
    if not is_pack:
        return load_trace_jsonl(source, span_id=span_id)
    with tempfile.TemporaryDirectory(prefix="runner-debug-") as tmp:
        unpacked = pack_stage.unpack(source, Path(tmp) / "pack")
        return load_trace_jsonl(unpacked.path / "traces.jsonl", span_id=span_id)


def _recorded_call(span: Span) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments from a span's recorded input: {"args": [...], "kwargs": {...}}, or one positional value."""
    value = span.input
    if value is None:
        return (), {}
    if isinstance(value, dict) and set(value) == {"args", "kwargs"} and isinstance(value["args"], list):
        return tuple(value["args"]), dict(value["kwargs"])
    return (value,), {}


def _read_state_file(path: Path) -> Any:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DebugError(f"cannot read state file {path}: {e}; give a checkpoint or a JSON object") from e
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        return CheckpointManager().load_checkpoint(path).agent_state
    return typedjson.decode(data, path=str(path))


def debug_pack(
    source: str | os.PathLike[str],
    span_id: str,
    function: str,
    *,
    mock_config: Mapping[str, str] | None = None,
    state_file: str | os.PathLike[str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> Any:
    """Replay the code behind one recorded span under pdb.

    `function` is ``module:function`` or ``module:Class.method``; a method runs on an instance of Class
    rebuilt from `state_file` (a checkpoint or a typed JSON object; without it, a fresh instance). The call gets the span's recorded
    input; the clock starts at the span's start; mocked paths serve the outputs recorded from that span on.
    """
    trace = _read_pack_trace(Path(source), span_id)
    span = trace.get_span(span_id)
    module_name, sep, qualname = function.partition(":")
    if not sep or not module_name or not qualname:
        raise DebugError(f"--function {function!r} must look like module:function or module:Class.method")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, so the project's modules import
    owner_name, _, method = qualname.rpartition(".")
    owner = _import_attr(module_name, owner_name, "--function") if owner_name else None
    if isinstance(owner, type):
        state = _read_state_file(Path(state_file)) if state_file else None
        target: str | Callable[..., Any] = method
        agent_module, agent_class = module_name, owner_name
    else:
        if state_file:
            raise DebugError(
                "--state needs --function module:Class.method (state rebuilds an instance of Class)"
            )
        target = _import_attr(module_name, qualname, "--function")
        state, agent_module, agent_class = None, None, None
    checkpoint = Checkpoint(
        checkpoint_id=f"ckpt_{hashlib.sha256(f'{source}/{span_id}'.encode()).hexdigest()[:12]}",
        agent_class_name=agent_class,
        agent_module=agent_module,
        agent_state=state,
        trace=_upstream(trace, span_id),
        span_id=span_id,
        timestamp=span.start_time_unix_nano / 1e9,
        metadata={"source": str(source)},
    )
    store = TraceStore(":memory:")
    try:
        store.add_spans(trace.spans)
        engine = ReplayEngine(checkpoint, trace_store=store, stdin=stdin, stdout=stdout)
    finally:
        store.close()
    args, kwargs = _recorded_call(span)
    try:
        return engine.debug(target, args, kwargs, dict(mock_config or {}))
    except DebugError:
        raise
    except Exception as e:  # the replayed code's own failure, already shown with its traceback
        raise DebugError(f"{function} raised {type(e).__name__}: {e} (traceback above)") from e
