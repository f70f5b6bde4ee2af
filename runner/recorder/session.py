"""A recording session: everything an agent does inside `with record(...)` becomes one repro pack.

Inputs: the repository the agent works in, options (`RecordOptions`), and the agent's calls on the
`Session`: `llm_call` / `instrument(client)`, `run_tool`, `capture_patch`, `artifact`, `task`.
Output: a pack written atomically at `out` when the block ends (also when it raised or was interrupted:
the session span then says so), and a `RecordSummary`. The work is done by collaborators: the recording
proxy (runner.recorder.proxy), tool running (runner.recorder.tools) and manifest assembly
(runner.recorder.assembly); the Session holds the state and the SDK's methods.
Rules:
- Start: the baseline (runner.recorder.baseline: settings, git base commit, the working tree as found,
  untracked files included, through a temporary index; given ready by `runner record`), spans, and a
  recording proxy whose variables are set in os.environ for the block (and restored after), so HTTP
  clients created inside record through it. The session span starts at the baseline. Neither the proxy
  nor the environment snapshot (with a per-session key) is waited for: the proxy takes the agent's first
  connections once it runs (runner.recorder.proxy), the snapshot is taken on a thread alongside the agent
  (`snapshot` waits).
- While the session runs, work is kept cheap: a model or tool call only begins its span on the agent's
  thread (runner.recorder.spans.Starter); outputs are hashed and spans made on deferred work, written to a
  buffered file; the pack is assembled once, at the end.
- Sampling: artifacts "all" (default) keeps every blob; "failing-only" keeps blobs only for failed or
  slow sessions (`slow_threshold` seconds) and otherwise keeps hashes and metadata in the spans only.
- `preflight` first checks what the end needs (the pack's folder, policy, keyring).
- Environment: each variable is replayed verbatim, as a placeholder of its shape, or dropped
  (runner.recorder.envpolicy); the snapshot keeps the verbatim values, the rest as keyed hashes. The
  proxy redacts request headers; a command's credential-like variables are not recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import os
import platform
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from runner import typedjson
from runner.errors import RunnerError
from runner.pack import manifest as mf
from runner.pack import snapshot
from runner.pack.build import PackBuilder
from runner.pack.snapshot import EnvSnapshot
from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, SPAN_TYPE
from runner.recorder import assembly, baseline, envpolicy, gitstate, traffic
from runner.recorder.baseline import Baseline
from runner.recorder.llm import LlmPolicy, LlmRecorder, instrument
from runner.recorder.options import RecordOptions
from runner.recorder.proxy import RecordingProxy
from runner.recorder.spans import Tracing, otlp_configured
from runner.recorder.summary import RecordSummary
from runner.recorder.tools import Blob, BlobStore, Command, ToolResult, ToolRunner, span_hex
from runner.recorder.worker import Deferred, Later, alongside

__all__ = ["PatchCapture", "RecordOptions", "RecordSummary", "Session", "TaskHandle", "ToolResult", "record"]


@dataclass(frozen=True)
class PatchCapture:
    step_id: str
    path: str  # patches/NNNN.diff
    before_tree: str
    after_tree: str
    size: int
    span_id: str


class TaskHandle:
    """The span of a task; `set_output(value)` records what the task produced."""

    def __init__(self, span: otel_trace.Span, task_id: str) -> None:
        self.span = span
        self.id = task_id
        self.span_id = span_hex(span)

    def set_output(self, value: object) -> None:
        self.span.set_attribute(SPAN_OUTPUT, typedjson.dumps(value, lenient=True))


class Session:
    """One recording. Use `record(...)` rather than building one directly."""

    def __init__(
        self,
        out: Path,
        repo: Path,
        options: RecordOptions,
        environ: Mapping[str, str] | None = None,
        baseline: Baseline | None = None,  # taken already (by `runner record`, before the agent started)
    ):
        self.out = Path(out).absolute()
        self.options = options
        self.id = str(uuid.uuid4())
        self.failed = False
        self.failure: str | None = None
        self.agent_command: mf.AgentCommand | None = None
        self.agent_patch: str | None = None
        self.agent_files: tuple[tuple[str, bytes], ...] = ()  # (pack member, bytes) of agent.command.files
        self.warnings: list[str] = []
        self._repo = Path(repo)
        self._given_environ = dict(environ) if environ is not None else None
        self._lock = threading.Lock()
        self._task: contextvars.ContextVar[str | None] = contextvars.ContextVar("runner_task", default=None)
        self._prompts: dict[str, bytes] = {}
        self._patches: list[tuple[str, bytes]] = []
        self._steps: list[mf.PatchStep | Command] = []
        self._blobs: list[Blob] = []
        self._ctx_token: object | None = None
        self._workdir: Path | None = None
        self._given_baseline = baseline
        self._proxy = (
            baseline.proxy
            if baseline is not None
            else RecordingProxy(
                secrets.token_bytes(32),
                upstream_ca=options.upstream_ca,
                record_loopback=options.record_loopback,
                set_environ=options.set_environ,
            )
        )
        self.key = self._proxy.key
        self._tools: ToolRunner | None = None
        self._started = 0.0
        self._builder: PackBuilder | None = None
        self._deferred = Deferred(background=options.live_spans or otlp_configured())
        self._commands = 0

    # --- start and end ---------------------------------------------------------------------------

    def start(self) -> Session:
        b = self._given_baseline or baseline.take(self.out, self._repo, self.options, self._proxy)
        self.privacy, self.git, self._tree, self._history = b.privacy.options(), b.git, b.tree, b.history
        self._started, self.created_at, self._workdir = b.started, b.created_at, b.workdir
        self._builder = PackBuilder(
            level=self.options.level, staging_dir=self._workdir / "staging", privacy=self.privacy
        )
        self._blob_store = BlobStore(self._workdir / "blobs")
        self._baseline = gitstate.diff_trees(self.git, self.git.head_tree, self._tree)
        o, environ = self.options, self.base_env()  # a copy: the agent may change os.environ meanwhile
        self.env_policy = envpolicy.decide(
            environ, runner_names=self._proxy.env, allow=o.env_allow, secret=o.env_secret
        )
        self._snapshot = alongside(lambda: self._take_snapshot(environ), "runner-snapshot")
        common: dict[str, str | bool | int | float] = {
            "runner.session.id": self.id,
            "runner.git.commit": self.git.base_commit,
            "runner.git.branch": self.git.branch or "",
            "runner.git.dirty": self.git.dirty,
        }
        self.tracing = Tracing(
            self._workdir / "traces.jsonl", common, o.agent, late=self._snapshot_attributes
        )
        self.tracing.dynamic = self._dynamic_attributes
        self.tracer = self.tracing.tracer
        self.session_span = self.tracer.start_span(
            "session",
            attributes={SPAN_TYPE: "session", "runner.agent.name": self.options.agent},
            start_time=b.started_ns,
        )
        self._ctx_token = otel_context.attach(otel_trace.set_span_in_context(self.session_span))
        self.llm = LlmRecorder(
            self.tracing.starter,
            self._store_prompt,
            LlmPolicy(self.options.seed, self.options.temperature_policy),
            defer=self._deferred.submit,
        )
        self._tools = ToolRunner(
            root=self.git.root,
            spans=self.tracing.starter,
            blobs=self._blob_store,
            defer=self._deferred.submit,
            new_command=self._new_command,
            command_env=lambda extra: self._proxy.command_env(self._given_environ, extra),
            replayed_env=self._replayed_env,
            default_timeout=self.options.default_timeout,
        )
        return self

    def _take_snapshot(self, environ: dict[str, str]) -> EnvSnapshot:
        g, allow = self.git, self.env_policy.snapshot_allow
        taken = snapshot.take(environ, self.key, repo=g.root, allow=allow)
        return dataclasses.replace(
            taken, git={"commit": g.base_commit, "branch": g.branch or "", "dirty": str(g.dirty).lower()}
        )

    @property
    def snapshot(self) -> EnvSnapshot:
        """The environment snapshot, taken alongside the agent from the session's start (waits for it)."""
        return self._snapshot.result()

    @property
    def console_scripts(self) -> Mapping[str, str]:
        """Console script -> package, from the snapshot: only a lookup waits for it."""
        return Later(lambda: snapshot.console_scripts(self.snapshot))

    def _snapshot_attributes(self) -> dict[str, str | bool | int | float]:
        python, uname = (self.snapshot.python or {}).get("version", "unknown"), platform.uname()
        runtime = f"python {python}; {uname.system} {uname.machine}"
        return {"runner.runtime": runtime, "runner.env.snapshot_id": self.snapshot.snapshot_id}

    def _dynamic_attributes(self) -> dict[str, str | bool | int | float]:
        task = self._task.get()
        return {"runner.task.id": task} if task else {}

    @property
    def proxy_env(self) -> dict[str, str]:
        """The recording proxy's variables (proxy URL, CA trust) for the agent's processes; empty without it."""
        return self._proxy.env

    def base_env(self) -> dict[str, str]:
        """The environment the agent's processes see: the given or current one, plus the proxy's."""
        return self._proxy.agent_env(self._given_environ)

    def _environ(self) -> Mapping[str, str]:
        """The agent's own environment: the given one, else the current one (without the proxy's)."""
        return self._given_environ if self._given_environ is not None else os.environ

    def _replayed_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        return assembly.replayed_env(self._environ(), extra)

    def _new_command(self) -> Command:
        with self._lock:
            self._commands += 1
            command = Command(f"c{self._commands}")
            self._steps.append(command)
        return command

    def close(self, exc: BaseException | None = None) -> RecordSummary:
        """End the session and write the pack (atomically). On error nothing is left under `out`."""
        assert self._workdir is not None and self._builder is not None
        try:
            self._deferred.drain()
            with contextlib.suppress(RunnerError):
                self.capture_patch(reason="end of session")
            exchanges = self._proxy.stop(self.tracer, self.session_span)
            self.warnings += filter(None, [self._proxy.failure])
            self.warnings += traffic.warnings(
                http=self.options.http,
                loopback=self.options.record_loopback,
                exchanges=exchanges,
                model_exchanges=self._proxy.model_exchanges,
                client_calls=self.llm.client_calls,
                environ=self._environ(),
                files=self.agent_files,
            )
            session_seconds = time.monotonic() - self._started
            if exc is not None:
                self.failed = True
                self.failure = self.failure or f"{type(exc).__name__}: {exc}"
            slow = self.options.slow_threshold is not None and session_seconds > self.options.slow_threshold
            sampling = assembly.sampling(self.options.artifacts, self.failed, slow)
            self.session_span.set_attributes(
                {
                    "runner.sampling.artifacts": sampling.artifacts,
                    "runner.sampling.reason": sampling.reason,
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
            final = assembly.build(
                self._captured(exchanges), sampling.keep, self._builder, self._workdir, self.out, self.privacy
            )
            self.warnings += assembly.bundle_warnings(final)
            return RecordSummary(
                path=self.out,
                manifest=final,
                spans=self.tracing.writer.count,
                exchanges=exchanges,
                failed=self.failed,
                artifacts_kept=sampling.keep,
                session_seconds=session_seconds,
                build_seconds=time.monotonic() - started,
                model_exchanges=self._proxy.model_exchanges,
                warnings=tuple(self.warnings),
            )
        finally:
            self._proxy.stop()
            self._deferred.close()
            self._builder.close()
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _captured(self, exchanges: int) -> assembly.Captured:
        options = self.options
        with self._lock:
            return assembly.Captured(
                session_id=self.id,
                created_at=self.created_at,
                agent=mf.Agent(
                    options.agent,
                    commit=options.agent_commit,
                    config_version=options.config_version,
                    command=self.agent_command,
                    patch=self.agent_patch,
                ),
                git=self.git,
                baseline=self._baseline,
                snapshot=self.snapshot,
                prompts=dict(self._prompts),
                patches=tuple(self._patches),
                steps=tuple(self._steps),
                blobs=tuple(self._blobs),
                llm_first=self.llm.first,
                exchanges=exchanges,
                env_decisions=self.env_policy.decisions,
                agent_files=self.agent_files,
                history=self._history,
                recording=mf.Recording(
                    exchanges, self._proxy.model_exchanges, options.record_loopback, tuple(self.warnings)
                ),
            )

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
        assert self._tools is not None, "run_tool needs a started session"
        return self._tools.run(argv, cwd=cwd, env=env, timeout=timeout, outputs=outputs, name=name)

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
        authoring_id = span_hex(authoring) if authoring.get_span_context().is_valid else ""
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
            span_id = span_hex(span)
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
            blob = self._blob_store.add(raw, media_type, name, span_hex(span))
            span.set_attributes({"runner.artifact.sha256": blob.sha256, "runner.artifact.size": len(raw)})
            with self._lock:
                self._blobs.append(blob)
        return blob.sha256

    def mark_failed(self, why: str) -> None:
        """Mark the session as failed (its artifacts are then kept in "failing-only" mode)."""
        self.failed = True
        self.failure = why

    # --- context manager -------------------------------------------------------------------------

    def __enter__(self) -> Session:
        try:
            return self.start()
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        self._proxy.stop()
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


@contextlib.contextmanager
def record(
    out: str | os.PathLike[str] = "pack.tar.zst",
    *,
    repo: str | os.PathLike[str] = ".",
    agent: str = "agent",
    **options: Any,
) -> Iterator[Session]:
    """Record the block as a repro pack at `out`. Options: see `RecordOptions` (http, artifacts, config_version,
    slow_threshold, seed, temperature_policy, level, ...).

        with record(out="pack.tar.zst", repo=".", agent="my-agent") as session:
            client = session.instrument(openai.OpenAI())
            session.run_tool(["pytest", "-q"], outputs=["junit.xml"])
    """
    session = Session(Path(out), Path(repo), RecordOptions(agent=agent, **options))
    with session:
        yield session
