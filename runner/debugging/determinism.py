"""Deterministic replays: a fixed clock, seeded random and uuid4, and mocked import paths serving responses.

Inputs: a `Checkpoint` (its timestamp starts the clock, its identity seeds the streams) and responders, one
per mocked import path. Outputs: the `DeterministicExecutionContext` and the responders a replay uses.

Rules:
- Inside the context the clock reads the checkpoint's timestamp, frozen, as the time-travel guide
  promises; `clock="advancing"` starts it there and moves it on by a fixed tick (1 ms) at each reading,
  for code whose timeout loops must end (two replays still read the same values); `random` and `uuid.uuid4` are seeded from the checkpoint id and span id; mocked import paths
  call their responders. Everything is put back on exit, errors included.
- The recorded responses for a span type are served in order, as deep copies; running out of them is an
  error that fails the replay even when the replayed code catches it.
- Mocking imports the module of each path: that is running code, by design.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import importlib
import inspect
import random
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from runner import typedjson
from runner.debugging.checkpoints import Checkpoint
from runner.errors import DebugError
from runner.observability import Span

__all__ = [
    "DEFAULT_TICK_NS",
    "Clock",
    "CounterfactualCall",
    "CounterfactualReport",
    "DeterministicExecutionContext",
    "MockCall",
    "Responder",
    "counterfactual_responders",
    "recorded_responders",
    "serve_in_order",
]

DEFAULT_TICK_NS = 1_000_000
Clock = Literal["frozen", "advancing"]


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


# ---------------------------------------------------------------------------------------------- clock, random, uuid4, mocks

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

    Inside: ``time.time``, ``time.time_ns``, ``datetime.datetime.now``/``utcnow``/``today`` return the
    checkpoint's timestamp, frozen (`clock="frozen"`, the default, as the time-travel guide promises); with
    `clock="advancing"` the clock starts there and advances by `tick_ns` per reading; the ``random`` module
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
        clock: Clock = "frozen",
    ) -> None:
        if clock not in ("frozen", "advancing"):
            raise DebugError(f"clock {clock!r}: use 'frozen' or 'advancing'")
        self.checkpoint = checkpoint
        self.clock: Clock = clock
        self.tick_ns = tick_ns if clock == "advancing" else 0
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


# ---------------------------------------------------------------------------------------------- responders


def _distinct_paths(mock_config: Mapping[str, str]) -> None:
    paths = list(mock_config.values())
    if len(set(paths)) != len(paths):
        raise DebugError(f"mock_config maps two span types to one import path: {dict(mock_config)}")


def recorded_responders(
    mock_config: Mapping[str, str], recordings: Callable[[str], Sequence[Span]], anchor: str
) -> dict[str, Responder]:
    """For each `span type -> import path` of `mock_config`, a responder serving the outputs of
    `recordings(span_type)` in order; `anchor` is the checkpoint span id they were recorded after."""
    _distinct_paths(mock_config)
    where = "the trace after span {}, for type {!r},"
    return {
        path: serve_in_order(path, [s.output for s in recordings(t)], where.format(anchor, t))
        for t, path in mock_config.items()
    }


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


def counterfactual_responders(
    mock_config: Mapping[str, str],
    recordings: Callable[[str], Sequence[Span]],
    pivot_ns: int,
    substitute: Mapping[str, Callable[..., Any]],
    calls: list[CounterfactualCall],
) -> dict[str, Responder]:
    """Responders serving recordings for spans that started before `pivot_ns`; from there on they call the
    `substitute` for the span type (with the call's arguments) or else the real function. Each call is
    appended to `calls`."""
    _distinct_paths(mock_config)

    def responder(span_type: str, path: str) -> Responder:
        spans = recordings(span_type)

        def respond(call: MockCall) -> Any:
            span = spans[call.index] if call.index < len(spans) else None
            recorded = span.output if span is not None else None
            source: Literal["recorded", "live", "substitute"]
            if span is not None and span.start_time_unix_nano < pivot_ns:
                source, actual = "recorded", _servable(recorded, path, call.index)
            elif span_type in substitute:
                source, actual = "substitute", substitute[span_type](*call.args, **call.kwargs)
            else:
                source, actual = "live", call.live(*call.args, **call.kwargs)
            calls.append(
                CounterfactualCall(
                    span_type, path, call.index, span.span_id if span else None, source, recorded, actual
                )
            )
            return actual

        return respond

    return {path: responder(t, path) for t, path in mock_config.items()}
