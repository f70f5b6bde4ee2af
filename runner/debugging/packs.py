"""Debugging a recorded span straight from a repro pack (or a traces.jsonl): the back of `runner debug`.

Inputs: a pack or traces.jsonl, a span id, ``module:function`` or ``module:Class.method``, mocks and an
optional state file. Output: the replayed call's result, run under pdb.

Rules:
- A pack is read only through the verified unpack of runner.pack (into a temporary folder), which checks
  the whole pack before writing anything and then writes traces.jsonl alone.
- The call gets the span's recorded input; the clock starts at the span's start; mocked paths serve the
  outputs recorded from that span on.
- Importing the named function is running code, by design; the current directory is importable, as with
  ``python -m``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from runner import typedjson
from runner.debugging.checkpoints import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointManager,
    import_attr,
    upstream,
)
from runner.debugging.engine import ReplayEngine
from runner.errors import DebugError, PackError
from runner.observability import Span, Trace, TraceStore, load_trace_jsonl
from runner.pack import read as pack_read

__all__ = ["debug_pack", "read_pack_trace"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def read_pack_trace(source: Path, span_id: str) -> Trace:
    """The trace holding `span_id`, from a traces.jsonl file or from a pack (unpacked safely and verified)."""
    try:
        with open(source, "rb") as f:
            is_pack = f.read(4) == _ZSTD_MAGIC
    except OSError as e:
        raise PackError(f"cannot read {source}: {e.strerror}; give a repro pack or a traces.jsonl") from e
    if not is_pack:
        return load_trace_jsonl(source, span_id=span_id)
    with tempfile.TemporaryDirectory(prefix="runner-debug-") as tmp:
        # Only traces.jsonl is written, and only once the whole pack checked out: a member's hash is known
        # at its end, and a 70 KB zstd bomb can declare gigabytes.
        unpacked = pack_read.unpack(source, Path(tmp) / "pack", only={"traces.jsonl"}, verify_first=True)
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
    except OSError as e:
        raise DebugError(
            f"cannot read state file {path}: {e.strerror}; give a checkpoint or a JSON object"
        ) from e
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8, or a 4,300+ digit integer
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0]
        raise DebugError(
            f"state file {path} is not JSON ({reason}); give a checkpoint or a JSON object"
        ) from e
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
    trace = read_pack_trace(Path(source), span_id)
    span = trace.get_span(span_id)
    module_name, sep, qualname = function.partition(":")
    if not sep or not module_name or not qualname:
        raise DebugError(f"--function {function!r} must look like module:function or module:Class.method")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, so the project's modules import
    owner_name, _, method = qualname.rpartition(".")
    owner = import_attr(module_name, owner_name, "--function") if owner_name else None
    if isinstance(owner, type):
        state = _read_state_file(Path(state_file)) if state_file else None
        target: str | Callable[..., Any] = method
        agent_module, agent_class = module_name, owner_name
    else:
        if state_file:
            raise DebugError(
                "--state needs --function module:Class.method (state rebuilds an instance of Class)"
            )
        target = import_attr(module_name, qualname, "--function")
        state, agent_module, agent_class = None, None, None
    checkpoint = Checkpoint(
        checkpoint_id=f"ckpt_{hashlib.sha256(f'{source}/{span_id}'.encode()).hexdigest()[:12]}",
        agent_class_name=agent_class,
        agent_module=agent_module,
        agent_state=state,
        trace=upstream(trace, span_id),
        span_id=span_id,
        timestamp=span.start_time_unix_nano / 1e9,
        metadata={"source": str(source)},
    )
    store = TraceStore(":memory:")
    try:
        store.add_spans(trace.spans)
        # The agent module is the one --function names: the user asked for it, and it is imported above.
        engine = ReplayEngine(
            checkpoint, trace_store=store, stdin=stdin, stdout=stdout, allowed_modules=(module_name,)
        )
    finally:
        store.close()
    args, kwargs = _recorded_call(span)
    try:
        return engine.debug(target, args, kwargs, dict(mock_config or {}))
    except DebugError:
        raise
    except Exception as e:  # the replayed code's own failure, already shown with its traceback
        raise DebugError(f"{function} raised {type(e).__name__}: {e} (traceback above)") from e
