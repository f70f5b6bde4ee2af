"""A recording session: everything an agent does inside `with record(...)` becomes one repro pack.

Inputs: the repository the agent works in, options (`RecordOptions`), and the agent's calls on the
`Session`: `llm_call` / `instrument(client)`, `run_tool`, `capture_patch`, `artifact`, `task`.
Output: a pack written atomically at `out` when the block ends (also when it raised or was interrupted:
the session span then says so), and a `RecordSummary`.
Rules:
- Start: git base commit and bundle, the dirty baseline (untracked files included, through a temporary
  index), an environment snapshot with a per-session key, spans, and a recording proxy whose variables are
  set in os.environ for the block (and restored after), so HTTP clients created inside record through it.
- While the session runs, work is kept cheap: outputs are hashed and held in memory, spans are written
  to a buffered file; the pack is assembled once, at the end.
- Sampling: artifacts "all" (default) keeps every blob; "failing-only" keeps blobs only for failed or
  slow sessions (`slow_threshold` seconds) and otherwise keeps hashes and metadata in the spans only.
- Secrets: environment values outside the allowlist are kept as keyed hashes, request headers are
  redacted by the proxy under the session key, a command's credential-like variables are not recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import platform
import re
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from runner import typedjson
from runner.errors import RecordError, RunnerError
from runner.pack import manifest as mf
from runner.pack import snapshot
from runner.pack.build import PackBuilder
from runner.pack.manifest import NORMALISERS
from runner.pack.snapshot import REPLAYED_ENV
from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, SPAN_TYPE
from runner.recorder import gitstate
from runner.recorder.llm import LlmPolicy, LlmRecorder, TemperaturePolicy, instrument
from runner.recorder.spans import Tracing, otlp_configured
from runner.recorder.worker import Deferred

__all__ = ["PatchCapture", "RecordOptions", "RecordSummary", "Session", "TaskHandle", "ToolResult", "record"]

ArtifactMode = Literal["all", "failing-only"]
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|auth|cookie|credential|session)")
_BLOB_IN_MEMORY = 8 << 20  # larger outputs are staged to disk at once


@dataclass(frozen=True)
class RecordOptions:
    agent: str = "agent"
    agent_commit: str | None = None
    config_version: str | None = None
    http: bool = True  # start a recording proxy
    set_environ: bool = True  # put the proxy and trust variables in os.environ for the block
    artifacts: ArtifactMode = "all"
    slow_threshold: float | None = None  # seconds; a slower session keeps its artifacts
    seed: int = 424242  # set on every model call that gives none
    temperature_policy: TemperaturePolicy = "refuse"
    level: int = 3
    default_timeout: float = 600.0
    upstream_ca: Path | None = None  # the CA bundle verifying real servers (default: this machine's)
    record_loopback: bool = False  # also send requests to localhost through the proxy (local model servers)
    # Finish spans on a background thread as the session goes (on when an OTLP endpoint is set), rather
    # than all at the end, which keeps the agent's own thread free of recording work.
    live_spans: bool = False


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
class PatchCapture:
    step_id: str
    path: str  # patches/NNNN.diff
    before_tree: str
    after_tree: str
    size: int
    span_id: str


@dataclass(frozen=True)
class RecordSummary:
    path: Path
    manifest: mf.Manifest
    spans: int
    exchanges: int
    failed: bool
    artifacts_kept: bool
    session_seconds: float
    build_seconds: float

    def line(self) -> str:
        steps = self.manifest.steps
        patches = sum(1 for s in steps if isinstance(s, mf.PatchStep))
        return (
            f"{self.path}: {len(steps)} steps ({patches} patches, {len(steps) - patches} commands), "
            f"{self.spans} spans, {self.exchanges} HTTP exchanges, "
            f"artifacts {'kept' if self.artifacts_kept else 'metadata only'}"
            f"{', session failed' if self.failed else ''}"
        )


@dataclass
class _Blob:
    data: bytes | None
    path: Path | None
    media_type: str
    name: str
    span_id: str
    sha256: str


@dataclass
class _Command:
    id: str
    step: mf.CommandStep | None = None  # filled in on the background thread
    blobs: list[_Blob] = field(default_factory=list)


def _span_hex(span: otel_trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


class TaskHandle:
    """The span of a task; `set_output(value)` records what the task produced."""

    def __init__(self, span: otel_trace.Span, task_id: str) -> None:
        self.span = span
        self.id = task_id
        self.span_id = _span_hex(span)

    def set_output(self, value: object) -> None:
        self.span.set_attribute(SPAN_OUTPUT, typedjson.dumps(value, lenient=True))


class Session:
    """One recording. Use `record(...)` rather than building one directly."""

    def __init__(
        self, out: Path, repo: Path, options: RecordOptions, environ: Mapping[str, str] | None = None
    ):
        self.out = Path(out).absolute()
        self.options = options
        self.id = str(uuid.uuid4())
        self.key = secrets.token_bytes(32)
        self.failed = False
        self.failure: str | None = None
        self.agent_command: mf.AgentCommand | None = None
        self.agent_patch: str | None = None
        self._repo = Path(repo)
        self._given_environ = dict(environ) if environ is not None else None
        self._lock = threading.Lock()
        self._task: contextvars.ContextVar[str | None] = contextvars.ContextVar("runner_task", default=None)
        self._prompts: dict[str, bytes] = {}
        self._patches: list[tuple[str, bytes]] = []
        self._steps: list[mf.PatchStep | _Command] = []
        self._blobs: list[_Blob] = []
        self._saved_environ: dict[str, str | None] = {}
        self._ctx_token: object | None = None
        self._workdir: Path | None = None
        self._proxy: Any = None
        self.proxy_env: dict[str, str] = {}
        self._started = 0.0
        self._builder: PackBuilder | None = None
        self._deferred = Deferred(background=options.live_spans or otlp_configured())
        self._commands = 0

    # --- start and end ---------------------------------------------------------------------------

    def start(self) -> Session:
        if not self.out.parent.is_dir():
            raise RecordError(f"{self.out.parent}: no such folder for the pack; create it or change --out")
        self._started = time.monotonic()
        self.created_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        self.git = gitstate.read_state(self._repo)
        self._workdir = Path(tempfile.mkdtemp(prefix="runner-record-"))
        self._builder = PackBuilder(level=self.options.level, staging_dir=self._workdir / "staging")
        self._tree = gitstate.worktree_tree(self.git, exclude=(self.out,))
        self.git = dataclasses.replace(self.git, dirty=self._tree != self.git.head_tree)
        self._baseline = gitstate.diff_trees(self.git, self.git.head_tree, self._tree)
        if self.options.http:
            self._start_proxy()
        environ = self.base_env()
        self.snapshot = snapshot.take(environ, self.key, repo=self.git.root)
        self.snapshot = dataclasses.replace(
            self.snapshot,
            git={
                "commit": self.git.base_commit,
                "branch": self.git.branch or "",
                "dirty": str(self.git.dirty).lower(),
            },
        )
        python = (self.snapshot.python or {}).get("version", "unknown")
        common: dict[str, str | bool | int | float] = {
            "runner.session.id": self.id,
            "runner.git.commit": self.git.base_commit,
            "runner.git.branch": self.git.branch or "",
            "runner.git.dirty": self.git.dirty,
            "runner.runtime": f"python {python}; {platform.system()} {platform.machine()}",
            "runner.env.snapshot_id": self.snapshot.snapshot_id,
        }
        self.tracing = Tracing(self._workdir / "traces.jsonl", common, self.options.agent)
        self.tracing.writer.dynamic = self._dynamic_attributes
        self.tracer = self.tracing.tracer
        self.session_span = self.tracer.start_span(
            "session", attributes={SPAN_TYPE: "session", "runner.agent.name": self.options.agent}
        )
        self._ctx_token = otel_context.attach(otel_trace.set_span_in_context(self.session_span))
        self.llm = LlmRecorder(
            self.tracer,
            self._store_prompt,
            LlmPolicy(self.options.seed, self.options.temperature_policy),
            defer=self._deferred.submit,
        )
        return self

    def _dynamic_attributes(self) -> dict[str, str | bool | int | float]:
        task = self._task.get()
        return {"runner.task.id": task} if task else {}

    def _start_proxy(self) -> None:
        from runner.cassettes.process import ProxyProcess, ProxySettings, recording_key
        from runner.cassettes.tls import client_trust_env, write_trust_bundle

        assert self._workdir is not None
        settings = ProxySettings(
            mode="record",
            cassette=self._workdir / "http.jsonl",
            workdir=self._workdir / "proxy",
            redact_key=recording_key(),
            upstream_ca=self.options.upstream_ca,
        )
        proxy = ProxyProcess(settings)
        try:
            proxy.start()
        except BaseException:
            proxy.stop()
            raise
        self._proxy = proxy
        assert proxy.ca is not None
        bundle = write_trust_bundle(proxy.ca, self._workdir / "trust" / "ca-bundle.pem")
        self.proxy_env = client_trust_env(bundle, proxy.url)
        if self.options.record_loopback:
            self.proxy_env["NO_PROXY"] = self.proxy_env["no_proxy"] = ""
        if self.options.set_environ:
            for name, value in self.proxy_env.items():
                self._saved_environ[name] = os.environ.get(name)
                os.environ[name] = value

    def base_env(self) -> dict[str, str]:
        """The environment the agent's processes see: the given or current one, plus the proxy's."""
        base = self._given_environ if self._given_environ is not None else dict(os.environ)
        return {**base, **self.proxy_env}

    def _replayed_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """What a command step records of its environment: the portable variables that change output
        (REPLAYED_ENV) as the session had them, and the command's own, never a credential."""
        base = self._given_environ if self._given_environ is not None else os.environ
        env = {k: v for k, v in base.items() if k in REPLAYED_ENV}
        env.update({k: v for k, v in extra.items() if not _SECRET_NAME.search(k)})
        return env

    def _command_env(self, extra: Mapping[str, str]) -> Mapping[str, str] | None:
        # None: the child inherits os.environ (proxy variables included) without copying it on every call.
        if self._given_environ is None and self.options.set_environ and not extra:
            return None
        return {**self.base_env(), **extra}

    def close(self, exc: BaseException | None = None) -> RecordSummary:
        """End the session and write the pack (atomically). On error nothing is left under `out`."""
        assert self._workdir is not None and self._builder is not None
        try:
            self._deferred.drain()
            with contextlib.suppress(RunnerError):
                self.capture_patch(reason="end of session")
            exchanges = self._stop_proxy()
            session_seconds = time.monotonic() - self._started
            if exc is not None:
                self.failed = True
                self.failure = self.failure or f"{type(exc).__name__}: {exc}"
            slow = self.options.slow_threshold is not None and session_seconds > self.options.slow_threshold
            keep = self.options.artifacts == "all" or self.failed or slow
            reason = (
                "all"
                if self.options.artifacts == "all"
                else ("failed" if self.failed else "slow" if slow else "passed")
            )
            self.session_span.set_attributes(
                {
                    "runner.sampling.artifacts": "kept" if keep else "metadata-only",
                    "runner.sampling.reason": reason,
                    "runner.session.duration_s": session_seconds,
                }
            )
            if self.failed:
                self.session_span.set_status(Status(StatusCode.ERROR, self.failure or "failed"))
                if exc is not None:
                    self.session_span.record_exception(exc)
            else:
                self.session_span.set_status(Status(StatusCode.OK))
            self.session_span.end()
            if self._ctx_token is not None:
                otel_context.detach(self._ctx_token)  # type: ignore[arg-type]
                self._ctx_token = None
            self.tracing.close()
            started = time.monotonic()
            final = self._build(keep, exchanges)
            return RecordSummary(
                path=self.out,
                manifest=final,
                spans=self.tracing.writer.count,
                exchanges=exchanges,
                failed=self.failed,
                artifacts_kept=keep,
                session_seconds=session_seconds,
                build_seconds=time.monotonic() - started,
            )
        finally:
            self._stop_proxy()
            self._deferred.close()
            self._builder.close()
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _stop_proxy(self) -> int:
        """Stop the proxy, restore os.environ, add an `http` span per recorded exchange; return the count."""
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ = {}
        proxy, self._proxy = self._proxy, None
        if proxy is None:
            return 0
        proxy.stop()
        cassette = proxy.settings.cassette
        count = 0
        if cassette.is_file():
            parent = otel_trace.set_span_in_context(self.session_span)
            for line in cassette.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                count += 1
                ex = json.loads(line)
                req, resp = ex["request"], ex["response"]
                start = int(float(ex.get("started") or time.time()) * 1e9)
                span = self.tracer.start_span(
                    f"{req['method']} {req['host']}",
                    context=parent,
                    kind=otel_trace.SpanKind.CLIENT,
                    start_time=start,
                    attributes={
                        SPAN_TYPE: "http",
                        "http.request.method": req["method"],
                        "url.full": f"{req['scheme']}://{req['host']}:{req['port']}{req['path']}",
                        "server.address": req["host"],
                        "http.response.status_code": resp["status"],
                        "runner.cassette.index": count,
                    },
                )
                span.end(end_time=start + int(float(ex.get("duration") or 0) * 1e9))
        return count

    # --- what an agent calls ---------------------------------------------------------------------

    @contextlib.contextmanager
    def task(self, name: str, input: object = None) -> Iterator[TaskHandle]:
        """A task span (e.g. "fix test_median"); spans opened inside carry its id."""
        task_id = uuid.uuid4().hex[:16]
        attrs: dict[str, Any] = {SPAN_TYPE: "task", "runner.task.name": name}
        if input is not None:
            attrs[SPAN_INPUT] = typedjson.dumps(input, lenient=True)
        token = self._task.set(task_id)
        try:
            with self.tracer.start_as_current_span(name, attributes=attrs) as span:
                yield TaskHandle(span, task_id)
        finally:
            self._task.reset(token)

    def llm_call(self, fn: Callable[..., Any], /, **params: Any) -> Any:
        """Call `fn(**params)` as a recorded model call (seed set, temperature checked, answer recorded)."""
        return self.llm.call(fn, "generic", **params)

    def instrument(self, client: Any) -> Any:
        """Record every `create` call of an OpenAI-style or Anthropic-style client; returns the client."""
        return instrument(client, self.llm)

    def _store_prompt(self, name: str, data: bytes) -> None:
        with self._lock:
            self._prompts[name] = data

    def _blob(self, data: bytes | Path, media_type: str, name: str, span_id: str) -> _Blob:
        if isinstance(data, Path):
            data = data.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = _Blob(data, None, media_type, name, span_id, digest)
        if len(data) > _BLOB_IN_MEMORY:
            assert self._workdir is not None
            path = self._workdir / "blobs" / digest
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            blob.data, blob.path = None, path
        return blob

    def _relative_cwd(self, cwd: Path) -> str:
        if cwd == self.git.root:
            return "."
        try:
            rel = cwd.resolve().relative_to(self.git.root.resolve())
        except ValueError:
            raise RecordError(
                f"{cwd}: a recorded command must run inside the repository {self.git.root}"
            ) from None
        return rel.as_posix() or "."

    def run_tool(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        outputs: Sequence[str] = (),
        name: str | None = None,
    ) -> ToolResult:
        """Run a command, record it as a replayable command step, and return what it did.

        `outputs` are files the command writes (paths relative to `cwd`): JUnit XML, coverage reports.
        """
        argv = tuple(str(a) for a in argv)
        if not argv:
            raise RecordError("run_tool needs a command: argv is empty")
        where = Path(cwd) if cwd is not None else self.git.root
        if not where.is_absolute():
            where = self.git.root / where
        rel_cwd = self._relative_cwd(where)
        limit = timeout if timeout is not None else self.options.default_timeout
        extra = dict(env or {})
        span = self.tracer.start_span(name or f"tool {Path(argv[0]).name}")
        span_id = _span_hex(span)
        started = time.monotonic()
        code, out, err = _run(argv, where, self._command_env(extra), limit)
        duration = time.monotonic() - started
        end = time.time_ns()
        produced: dict[str, bytes] = {}
        for rel in outputs:  # read now: the next command may overwrite them
            path = where / rel
            if path.is_file():
                produced[rel] = path.read_bytes()
        step_id = None
        holder = None
        if code is not None:
            with self._lock:
                self._commands += 1
                step_id = f"c{self._commands}"
                holder = _Command(step_id)
                self._steps.append(holder)

        def finish() -> None:
            blobs = [self._blob(out, "text/plain", f"{step_id or span_id}.stdout", span_id),
                     self._blob(err, "text/plain", f"{step_id or span_id}.stderr", span_id)]  # fmt: skip
            blobs += [self._blob(d, _media(p, d), p, span_id) for p, d in produced.items()]
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
                    env=self._replayed_env(extra),
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

        self._deferred.submit(finish)
        return ToolResult(argv, code, out, err, duration, produced, span_id, step_id)

    def capture_patch(self, reason: str = "") -> PatchCapture | None:
        """Store what changed in the working tree since the last capture as the next patch step.

        Returns None when nothing changed.
        """
        after = gitstate.worktree_tree(self.git, exclude=(self.out,))
        before = self._tree
        if after == before:
            return None
        diff = gitstate.diff_trees(self.git, before, after)
        authoring = otel_trace.get_current_span()
        authoring_id = _span_hex(authoring) if authoring.get_span_context().is_valid else ""
        files = re.findall(rb"^diff --git a/(.*?) b/", diff, flags=re.M)
        with self.tracer.start_as_current_span(
            "file.patch",
            attributes={
                SPAN_TYPE: "patch",
                "runner.patch.reason": reason,
                "runner.patch.before_tree": before,
                "runner.patch.after_tree": after,
                "runner.patch.sha256": hashlib.sha256(diff).hexdigest(),
                "runner.patch.authoring_span": authoring_id,
                "runner.patch.files": [f.decode("utf-8", "replace") for f in files],
                SPAN_INPUT: typedjson.dumps({"args": [reason], "kwargs": {}}),
            },
        ) as span:
            span_id = _span_hex(span)
            with self._lock:
                number = len(self._patches) + 1
                path = f"patches/{number:04d}.diff"
                step = mf.PatchStep(id=f"p{number}", patch=path, span_id=span_id, reason=reason or None)
                self._patches.append((path, diff))
                self._steps.append(step)
                self._tree = after
            span.set_attribute("runner.patch.path", path)
            span.set_attribute(SPAN_OUTPUT, typedjson.dumps({"patch": path, "after_tree": after}))
        return PatchCapture(step.id, path, before, after, len(diff), span_id)

    def artifact(
        self, data: bytes | os.PathLike[str], *, name: str, media_type: str = "application/octet-stream"
    ) -> str:
        """Store a blob (a log, a report, a build output) under its sha256, with an `artifact` span."""
        raw = data if isinstance(data, bytes) else Path(data).read_bytes()
        with self.tracer.start_as_current_span(
            f"artifact {name}", attributes={SPAN_TYPE: "artifact", "runner.artifact.name": name}
        ) as span:
            blob = self._blob(raw, media_type, name, _span_hex(span))
            span.set_attributes({"runner.artifact.sha256": blob.sha256, "runner.artifact.size": len(raw)})
            with self._lock:
                self._blobs.append(blob)
        return blob.sha256

    def mark_failed(self, why: str) -> None:
        """Mark the session as failed (its artifacts are then kept in "failing-only" mode)."""
        self.failed = True
        self.failure = why

    # --- the pack --------------------------------------------------------------------------------

    def _build(self, keep: bool, exchanges: int) -> mf.Manifest:
        assert self._workdir is not None and self._builder is not None
        b = self._builder
        b.add_file("traces.jsonl", self._workdir / "traces.jsonl")
        for name, data in sorted(self._prompts.items()):
            b.add_bytes(f"prompts/{name}", data)
        for path, diff in self._patches:
            b.add_bytes(path, diff)
        steps: list[mf.Step] = []
        blobs = list(self._blobs)
        for item in self._steps:
            if isinstance(item, mf.PatchStep):
                steps.append(item)
                continue
            assert item.step is not None  # the background work was drained
            if keep:
                steps.append(item.step)
                blobs += item.blobs
            else:  # hashes stay in the span; replay then compares exit codes only
                steps.append(
                    dataclasses.replace(
                        item.step, expect=mf.Expectation(item.step.expect.exit_code), compare=mf.Comparison()
                    )
                )
        if keep or not self._steps:
            for blob in blobs:
                b.add_artifact(blob.data if blob.data is not None else blob.path,  # type: ignore[arg-type]
                               media_type=blob.media_type, name=blob.name, span_id=blob.span_id)  # fmt: skip
        if self._baseline:
            b.add_bytes(mf.BASELINE_PATH, self._baseline)
        gitstate.bundle(self.git, self._workdir / "base.bundle")
        b.add_file(mf.BUNDLE_PATH, self._workdir / "base.bundle")
        env_dir = self._workdir / "env"
        for rel in snapshot.write(self.snapshot, env_dir, repo=self.git.root):
            b.add_file(f"env/{rel}", env_dir / rel)
        cassettes: tuple[mf.CassetteIndex, ...] = ()
        if exchanges:
            b.add_file("cassettes/http.jsonl", self._workdir / "http.jsonl")
            cassettes = (mf.CassetteIndex("cassettes/http.jsonl", 1, exchanges),)
        manifest = mf.Manifest(
            session=mf.Session(self.id, self.created_at),
            agent=mf.Agent(
                self.options.agent,
                commit=self.options.agent_commit,
                config_version=self.options.config_version,
                command=self.agent_command,
                patch=self.agent_patch,
            ),
            git=mf.GitInputs(
                base_commit=self.git.base_commit,
                remote=self.git.remote,
                branch=self.git.branch,
                dirty=self.git.dirty,
                baseline_patch=mf.BASELINE_PATH if self._baseline else None,
            ),
            environment=self._environment(),
            llm=self._llm_defaults(),
            steps=tuple(steps),
            cassettes=cassettes,
            privacy=mf.Privacy(redaction_policy="runner-record-v1"),
        )
        from runner.cassettes.process import sealing_options

        return b.build(manifest, self.out, privacy=sealing_options(self._workdir / "proxy"))

    def _environment(self) -> mf.Environment:
        snap = self.snapshot
        python = (snap.python or {}).get("version", "")
        if not re.fullmatch(r"[0-9]+\.[0-9]+(\.[0-9]+)?([a-z]+[0-9]*)?\+?", python):
            python = platform.python_version()
        runtimes = {"python": python}
        node = snap.tools.get("node")
        if node:
            runtimes["node"] = node.lstrip("v")
        os_name = (
            snap.os.get("pretty_name") or f"{snap.os.get('system', '')} {snap.os.get('release', '')}".strip()
        )
        return mf.Environment(
            kind="snapshot",
            snapshot=mf.EnvSnapshot(
                python, "env/pip-freeze.txt", os_name[:200] or "unknown", snap.os.get("machine")
            ),
            lockfiles=tuple(f"env/lockfiles/{name}" for name in snap.lockfiles),
            runtimes=runtimes,
        )

    def _llm_defaults(self) -> mf.LlmDefaults | None:
        first = self.llm.first
        if not first or not isinstance(first.get("model"), str) or not first["model"]:
            return None

        def number(name: str, integer: bool, low: float | None = None, high: float | None = None) -> Any:
            value: Any = first.get(name)
            if type(value) not in ((int,) if integer else (int, float)):
                return None
            if (low is not None and value < low) or (high is not None and value > high):
                return None
            return value

        return mf.LlmDefaults(
            provider=str(first.get("provider") or "generic")[:200],
            model=first["model"][:200],
            seed=number("seed", True),
            temperature=number("temperature", False, 0),
            top_p=number("top_p", False, 0, 1),
            max_tokens=number("max_tokens", True, 1),
        )

    # --- context manager -------------------------------------------------------------------------

    def __enter__(self) -> Session:
        try:
            return self.start()
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        self._stop_proxy()
        self._deferred.close()
        if self._builder is not None:
            self._builder.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.summary = self.close(exc)
        except BaseException as e:
            if exc is not None:
                exc.add_note(f"and the pack could not be written: {e}")
                return
            raise


def _media(path: str, data: bytes) -> str:
    if path.endswith(".xml"):
        return "application/xml"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def _rule(path: str, data: bytes) -> str:
    """How replay compares a declared output: JUnit results, text after normalisers, or bytes."""
    if b"<testsuite" in data[:4096]:
        return "junit"
    return "text" if _media(path, data) != "application/octet-stream" else "exact"


def _run(
    argv: tuple[str, ...], cwd: Path, env: Mapping[str, str] | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """Run a command to its end or its timeout (then its process group is killed): exit code or None, output."""
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
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
    with selectors.DefaultSelector() as sel:
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


@contextlib.contextmanager
def record(
    out: str | os.PathLike[str] = "pack.tar.zst",
    *,
    repo: str | os.PathLike[str] = ".",
    agent: str = "agent",
    **options: Any,
) -> Iterator[Session]:
    """Record the block as a repro pack at `out`. Options: see `RecordOptions` (http, artifacts,
    slow_threshold, seed, temperature_policy, level, ...).

        with record(out="pack.tar.zst", repo=".", agent="my-agent") as session:
            client = session.instrument(openai.OpenAI())
            session.run_tool(["pytest", "-q"], outputs=["junit.xml"])
    """
    session = Session(Path(out), Path(repo), RecordOptions(agent=agent, **options))
    with session:
        yield session
