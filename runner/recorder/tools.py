"""Running a tool for the recorder: the command, its hard timeout, its output blobs and its command step.

Inputs: an argv, a folder inside the repository, extra variables, a timeout and the files it writes.
Outputs: a `ToolResult` at once; later, on the session's deferred worker, a `tool` span (begun on the
agent's thread, made there: runner.recorder.spans) and the `Command` (step and blobs) the pack is
assembled from. `BlobStore` keeps outputs by sha256 (large ones on disk).
Rules: a command runs in its own process group, which is killed at the timeout (the step is then not
replayable: it has no id); declared outputs are read as soon as the command ends, as the next one may
overwrite them; a command outside the repository is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from runner import typedjson
from runner.errors import RecordError
from runner.pack import manifest as mf
from runner.pack.manifest import NORMALISERS
from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, SPAN_TYPE
from runner.recorder.spans import Starter

__all__ = ["Blob", "BlobStore", "Command", "ToolResult", "ToolRunner", "run_process", "span_hex"]

# poll() as subprocess uses it: one system call a wait, where epoll (the default) needs four more to set up.
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)
_BLOB_IN_MEMORY = 8 << 20  # larger outputs are staged to disk at once
# The manifest's OUTPUT_RULES, as a type.
_OutputRule = Literal["exact", "text", "junit"]


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    exit_code: int | None  # None: killed at its timeout
    stdout: bytes
    stderr: bytes
    duration: float
    outputs: Mapping[str, bytes]
    span_id: str
    step_id: str | None  # None when the command could not be recorded as a replayable step


@dataclass(frozen=True)
class Blob:
    data: bytes | Path  # the bytes, or the staging file holding them
    media_type: str
    name: str
    span_id: str
    sha256: str


@dataclass
class Command:
    id: str
    step: mf.CommandStep | None = None  # filled in on the background thread
    blobs: list[Blob] = field(default_factory=list)


def span_hex(span: otel_trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


class BlobStore:
    """Blobs by sha256: small ones held in memory, large ones written under `folder` at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, data: bytes | Path, media_type: str, name: str, span_id: str) -> Blob:
        if isinstance(data, Path):
            data = data.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if len(data) <= _BLOB_IN_MEMORY:
            return Blob(data, media_type, name, span_id, digest)
        path = self.folder / digest
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return Blob(path, media_type, name, span_id, digest)


class ToolRunner:
    """`Session.run_tool`: the session hands in where things go and how a command's environment is made."""

    def __init__(
        self,
        *,
        root: Path,
        spans: Starter,
        blobs: BlobStore,
        defer: Callable[[Callable[[], None]], None],
        new_command: Callable[[], Command],
        command_env: Callable[[Mapping[str, str]], Mapping[str, str] | None],
        replayed_env: Callable[[Mapping[str, str]], dict[str, str]],
        default_timeout: float,
    ) -> None:
        self.root = root
        self.spans = spans
        self.blobs = blobs
        self.defer = defer
        self.new_command = new_command
        self.command_env = command_env
        self.replayed_env = replayed_env
        self.default_timeout = default_timeout

    def relative_cwd(self, cwd: Path) -> str:
        if cwd == self.root:
            return "."
        try:
            rel = cwd.resolve().relative_to(self.root.resolve())
        except ValueError:
            raise RecordError(
                f"{cwd}: a recorded command must run inside the repository {self.root}"
            ) from None
        return rel.as_posix() or "."

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None,
        env: Mapping[str, str] | None,
        timeout: float | None,
        outputs: Sequence[str],
        name: str | None,
    ) -> ToolResult:
        """See `Session.run_tool`."""
        argv = tuple(str(a) for a in argv)
        if not argv:
            raise RecordError("run_tool needs a command: argv is empty")
        # A Path given is used as it is: parsing it again costs more than the rest of this method's work.
        where = self.root if cwd is None else cwd if isinstance(cwd, Path) else Path(cwd)
        if not where.is_absolute():
            where = self.root / where
        rel_cwd = self.relative_cwd(where)
        limit = timeout if timeout is not None else self.default_timeout
        extra = dict(env or {})
        start = self.spans.begin(name or f"tool {os.path.basename(argv[0])}")
        span_id = start.span_hex
        started = time.monotonic()
        code, out, err = run_process(argv, where, self.command_env(extra), limit)
        duration = time.monotonic() - started
        end = time.time_ns()
        produced: dict[str, bytes] = {}
        for rel in outputs:  # read now: the next command may overwrite them
            path = where / rel
            if path.is_file():
                produced[rel] = path.read_bytes()
        holder = self.new_command() if code is not None else None
        step_id = holder.id if holder is not None else None

        def finish() -> None:
            blobs = [self.blobs.add(out, "text/plain", f"{step_id or span_id}.stdout", span_id),
                     self.blobs.add(err, "text/plain", f"{step_id or span_id}.stderr", span_id)]  # fmt: skip
            blobs += [self.blobs.add(d, _media(p, d), p, span_id) for p, d in produced.items()]
            span = start.span
            span.set_attributes(
                {
                    SPAN_TYPE: "tool",
                    SPAN_INPUT: typedjson.dumps({"args": [list(argv)], "kwargs": {"cwd": rel_cwd}}),
                    "runner.tool.argv": list(argv),
                    "runner.tool.cwd": rel_cwd,
                    "runner.tool.exit_code": -1 if code is None else code,
                    "runner.tool.duration_s": duration,
                    "runner.tool.stdout.sha256": blobs[0].sha256,
                    "runner.tool.stderr.sha256": blobs[1].sha256,
                    "runner.tool.outputs": [
                        f"{p} sha256:{b.sha256}" for p, b in zip(produced, blobs[2:], strict=True)
                    ],
                    SPAN_OUTPUT: typedjson.dumps(
                        {
                            "exit_code": code,
                            "stdout": out.decode("utf-8", "replace"),
                            "stderr": err.decode("utf-8", "replace"),
                        }
                    ),
                }
            )
            if holder is None:
                span.set_status(Status(StatusCode.ERROR, f"killed after its {limit:g}s timeout"))
            else:
                holder.blobs = blobs
                holder.step = mf.CommandStep(
                    id=holder.id,
                    argv=argv,
                    cwd=rel_cwd,
                    env=self.replayed_env(extra),
                    timeout=max(1.0, float(limit)),
                    expect=mf.Expectation(
                        exit_code=code if code is not None else -1,
                        stdout=blobs[0].sha256,
                        stderr=blobs[1].sha256,
                        outputs={p: b.sha256 for p, b in zip(produced, blobs[2:], strict=True)},
                    ),
                    compare=mf.Comparison(
                        stdout=tuple(sorted(NORMALISERS)),
                        stderr=tuple(sorted(NORMALISERS)),
                        outputs={p: _rule(p, d) for p, d in produced.items()},
                    ),
                    span_id=span_id,
                )
            span.end(end_time=end)

        self.defer(finish)
        return ToolResult(argv, code, out, err, duration, produced, span_id, step_id)


def _media(path: str, data: bytes) -> str:
    if path.endswith(".xml"):
        return "application/xml"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def _rule(path: str, data: bytes) -> _OutputRule:
    """How replay compares a declared output: JUnit results, text after normalisers, or bytes."""
    if b"<testsuite" in data[:4096]:
        return "junit"
    return "text" if _media(path, data) != "application/octet-stream" else "exact"


def run_process(
    argv: tuple[str, ...], cwd: Path, env: Mapping[str, str] | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """Run a command to its end or its timeout (then its process group is killed): exit code or None, output.
    A process group of its own rather than a session (setsid) keeps the interpreter's vfork path: ~0.15 ms
    less per command on the agent's path. Its stdin is closed; one that opens /dev/tty to prompt stops
    there (a background group) until its timeout, where in a session of its own it failed at once."""
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, process_group=0,
        )  # fmt: skip
    except OSError as e:
        raise RecordError(f"cannot run {argv[0]!r} in {cwd}: {e.strerror}; check the command exists") from e
    try:
        result = _communicate(proc, time.monotonic() + timeout)
    except BaseException:
        result = None
        raise
    finally:
        if result is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    if result is None:
        return None, b"", b""
    return proc.returncode, result[0], result[1]


def _communicate(proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes] | None:
    """Read both pipes and reap the process by `deadline`; None when it passed. Unlike
    `Popen.communicate(timeout=...)`, waiting for the exit blocks on a pidfd instead of polling with sleeps."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with _Selector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for key, _ in sel.select(remaining):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
    proc.stdout.close()
    proc.stderr.close()
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            return None
    else:
        try:
            ready, _, _ = select.select([pidfd], [], [], remaining)
        finally:
            os.close(pidfd)
        if not ready:
            return None
        proc.wait()
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd])
