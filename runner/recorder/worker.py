"""Deferred work: keeps serialising, hashing and probing off the agent's path.

Input: closures to run later (serialising a model call, hashing a command's output, ending its span).
Output: the closures run in submission order, either when the session drains them (the default: nothing
competes with the agent for the interpreter while it works) or on a background thread (`background=True`,
so spans reach an OTLP collector while the session runs).
Rules: nothing is dropped: the pending list is bounded by running the work inline once it holds
`max_pending` closures, and the background queue blocks when full. `drain` runs or waits for all of it
and re-raises the first error a closure raised.
`alongside(fn)` runs one function on its own thread while the agent works (the environment snapshot) and
returns an `Alongside`: a Future's `done`, `result` and `exception`, without importing concurrent.futures
before the agent starts. `Later(fn)` is a mapping computed by `fn` on first use, so a caller that never
looks into it never waits for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Alongside", "Deferred", "Later", "alongside"]

T = TypeVar("T")

Work = Callable[[], None]


class Deferred:
    def __init__(self, background: bool = False, max_pending: int = 10_000) -> None:
        self.background = background
        self._max_pending = max_pending
        self._pending: list[Work] = []
        self._queue: queue.Queue[Work | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, work: Work) -> None:
        if not self.background:
            with self._lock:
                self._pending.append(work)
                full = len(self._pending) >= self._max_pending
            if full:
                self._run_pending()
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="runner-record", daemon=True)
                    self._thread.start()
        self._queue.put(work)  # blocks when full: slower, never lossy

    def drain(self) -> None:
        """Run (or wait for) everything submitted; re-raise the first error one of them raised."""
        self._run_pending()
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None

    def _run_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for work in pending:
            self._guarded(work)

    def _guarded(self, work: Work) -> None:
        try:
            work()
        except BaseException as e:  # kept for drain(): the remaining work must still run
            if self._error is None:
                self._error = e

    def _loop(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                self._guarded(work)
            finally:
                self._queue.task_done()


class Alongside(Generic[T]):
    """`fn` running on a daemon thread named `name`, started at once."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # handed to whoever asks for the result
            self._error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def exception(self) -> BaseException | None:
        """What `fn` raised (None when it returned), once it is done."""
        self._thread.join()
        return self._error

    def result(self) -> T:
        """What `fn` returned, once it is done; what it raised is raised here."""
        error = self.exception()
        if error is not None:
            raise error
        return self._value  # type: ignore[return-value]  # set: fn returned


def alongside(fn: Callable[[], T], name: str) -> Alongside[T]:
    """Run `fn` on a daemon thread now; its result (or error) in the returned `Alongside`."""
    return Alongside(fn, name)


class Later(Mapping[str, str]):
    """A mapping computed by `fn` the first time it is looked into."""

    def __init__(self, fn: Callable[[], Mapping[str, str]]) -> None:
        self._fn = fn
        self._value: Mapping[str, str] | None = None

    def _get(self) -> Mapping[str, str]:
        if self._value is None:
            self._value = self._fn()
        return self._value

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
