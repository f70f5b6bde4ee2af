"""Replays: re-run an agent's code from a checkpoint with the responses recorded after it served back.

Inputs: a `Checkpoint`, optionally a trace store holding the whole trace, and `mock_config` (span type ->
import path). Outputs: the replayed call's result, plainly, under pdb, or as a `CounterfactualReport`.

Rules:
- The recorded responses for a span type are the outputs of the spans of that type that start at or after
  the checkpoint span (its ancestors excluded), oldest first; taken from the checkpoint's trace, or from
  the whole trace when a trace store is given.
- Every replay runs inside `DeterministicExecutionContext`; a coroutine is run to completion.
- The checkpoint's agent module is imported only when already imported or in `allowed_modules`.
- `start_debugging_session` prints: it is the interactive front of the package (to the engine's stdout).
"""

from __future__ import annotations

import asyncio
import bdb
import dataclasses
import datetime as dt
import inspect
import pdb
import sys
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import IO, Any, Protocol

from runner.debugging.checkpoints import Checkpoint, rehydrate_agent
from runner.debugging.determinism import (
    CounterfactualCall,
    CounterfactualReport,
    DeterministicExecutionContext,
    Responder,
    counterfactual_responders,
    recorded_responders,
)
from runner.errors import DebugError
from runner.observability import Span, Trace

__all__ = ["PdbReplay", "ReplayEngine", "TraceLookup"]

_RULE = "-" * 72


class TraceLookup(Protocol):
    def get_trace(self, trace_id: str) -> Trace: ...


class ReplayEngine:
    """Re-run the checkpoint's code with the spans recorded after it served back."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        trace_store: TraceLookup | None = None,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        allowed_modules: Collection[str] = (),
    ) -> None:
        self.checkpoint = checkpoint
        self.allowed_modules = tuple(allowed_modules)  # the agent modules rehydration may import
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

    def rehydrate_agent(self) -> Any:
        """A new agent of the checkpoint's class holding the checkpoint's state (a copy)."""
        return rehydrate_agent(self.checkpoint, self.allowed_modules)

    # -- replays

    def replay_from_checkpoint(
        self,
        function_name: str | Callable[..., Any],
        *args: Any,
        mock_config: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call `function_name` on a rehydrated agent (or call a function) deterministically; return its result."""
        return self._replay(function_name, args, kwargs, self._responders(mock_config or {}))

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
        print(_preflight(self.checkpoint, self.mock_analysis(mock_config)), file=self.stdout)
        responders = self._responders(mock_config)
        with DeterministicExecutionContext(self.checkpoint, responders=responders) as ctx:
            fn, label = _target(self.checkpoint, function, self.allowed_modules)
            return PdbReplay(self.stdin, self._stdout).run(fn, label, args, kwargs, ctx.check)

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
        calls: list[CounterfactualCall] = []
        responders = counterfactual_responders(
            mock_config, self.recorded_spans, pivot, dict(substitute or {}), calls
        )
        result = self._replay(function_name, args, dict(kwargs or {}), responders)
        return CounterfactualReport(result, tuple(calls))

    def _responders(self, mock_config: Mapping[str, str]) -> dict[str, Responder]:
        return recorded_responders(mock_config, self.recorded_spans, self.checkpoint.span_id)

    def _replay(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        responders: Mapping[str, Responder],
    ) -> Any:
        with DeterministicExecutionContext(self.checkpoint, responders=responders) as ctx:
            fn, _ = _target(self.checkpoint, function, self.allowed_modules)
            result = _call(fn, args, kwargs)
            ctx.check()
            return result


def _target(
    checkpoint: Checkpoint, function: str | Callable[..., Any], allowed_modules: Collection[str]
) -> tuple[Callable[..., Any], str]:
    """The callable to replay and its label: `function` itself, or that method of the rehydrated agent."""
    if callable(function):
        return function, getattr(function, "__qualname__", repr(function))
    agent = rehydrate_agent(checkpoint, allowed_modules)
    method = getattr(agent, function, None)
    if not callable(method):
        names = sorted(n for n in dir(type(agent)) if not n.startswith("_") and callable(getattr(agent, n)))
        raise DebugError(f"{type(agent).__qualname__} has no method {function!r}; it has: {', '.join(names)}")
    return method, f"{type(agent).__qualname__}.{function}"


def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call `fn`; a coroutine it returns is run to completion in a new event loop."""
    result = fn(*args, **kwargs)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


# ---------------------------------------------------------------------------------------------- pdb


def _preflight(ck: Checkpoint, mock_analysis: Sequence[str]) -> str:
    """The banner before a pdb replay: where it starts, which agent state, which clock, which mocks."""
    span = ck.span
    agent = f"{ck.agent_module}.{ck.agent_class_name}" if ck.agent_class_name else "none (plain function)"
    if ck.agent_class_name and ck.agent_state is None:
        agent += " (fresh instance: no state given)"
    clock = dt.datetime.fromtimestamp(ck.timestamp, dt.UTC).isoformat()
    return "\n".join(
        [
            "--- runner time-travel debugger ---",
            f"  Trace ID:    {ck.trace.trace_id}",
            f"  Checkpoint:  {ck.checkpoint_id} at span {span.name!r} ({span.span_id})",
            f"  Agent state: {agent}",
            f"  Clock:       {clock} (+1 ms per read)",
            _RULE,
            "--- Pre-flight mock analysis ---",
            "\n".join(mock_analysis) or "  (no mocks: every call runs for real)",
            _RULE,
        ]
    )


@dataclasses.dataclass(frozen=True)
class PdbReplay:
    """Runs one replayed call under pdb, stopped at its first line, and says on `stdout` how it ended."""

    stdin: IO[str] | None = None
    stdout: IO[str] | None = None  # None: sys.stdout at the time of the run

    def run(
        self,
        fn: Callable[..., Any],
        label: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        check: Callable[[], None],
    ) -> Any:
        """The call's result (None when abandoned from the debugger); `check` runs after the call returns."""
        out = self.stdout or sys.stdout
        print(f"Stopping at the start of {label}(); 'c' continues, 'q' abandons the replay.", file=out)
        out.flush()
        # Frames of this package (the mock wrappers) are not stepped into.
        debugger = pdb.Pdb(stdin=self.stdin, stdout=self.stdout, skip=["runner.debugging.*"])
        try:
            result = _runcall(debugger, fn, args, kwargs)
            check()
        except bdb.BdbQuit:
            print(f"{_RULE}\n--- Replay abandoned from the debugger ---", file=out)
            return None
        except BaseException as e:
            if not isinstance(e, DebugError | KeyboardInterrupt):
                traceback.print_exc(file=out)  # the replayed code failed: where is the point
            print(f"{_RULE}\n--- Replay failed: {type(e).__name__}: {e} ---", file=out)
            raise
        print(f"{_RULE}\n--- Replay finished. Final result: {result!r} ---", file=out)
        return result


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
