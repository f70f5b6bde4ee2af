"""`runner record -- CMD`: record any agent process, in any language, from the outside.

Inputs: the agent's argv, the repository it works in, `--check` shell commands, recording options.
Output: a pack (see runner.recorder.session) whose steps are the agent's patch (`agent.patch`) then one
command step per check, whose manifest says how the agent was started and how it exited (`agent.command`
with its `exit_code`), and a `WrapResult` with the agent's exit code.
Rules: every setting (repository, working folder, pack folder, privacy settings, `--capture-file`s) is
checked before the agent starts. The agent runs with stdin closed and the recording proxy's variables and
CA trust in its environment (the runner's own os.environ is left alone); `agent.command` records its argv
in a form that resolves in the replay image, its own files from outside the repository
(runner.recorder.agentcmd) and the variables replayed verbatim (runner.recorder.envpolicy); its output streams through to ours as it comes and is kept as an
artifact; the environment snapshot is of the agent's environment (its PATH). Ctrl-C (or SIGTERM) stops the
agent (SIGINT, then SIGTERM, then SIGKILL to its process group) and the pack still holds what was captured.
Start: the agent is spawned as soon as the baseline is taken (runner.recorder.baseline: settings, working
tree, the proxy on its bound port); the session (OpenTelemetry, the pack builder) is imported and started
while it runs, its `session` and `agent` spans dated from the baseline and the spawn. Should that fail,
the agent is stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from runner.errors import RecordError, UsageError
from runner.recorder import agentcmd, baseline, gitstate
from runner.recorder.options import RecordOptions
from runner.recorder.proxy import RecordingProxy

if TYPE_CHECKING:
    from runner.recorder.summary import RecordSummary

__all__ = ["WrapResult", "record_command"]

_GRACE = 5.0


@dataclass(frozen=True)
class WrapResult:
    summary: RecordSummary
    agent_exit_code: int | None  # None when the agent was stopped by Ctrl-C or its timeout
    interrupted: bool
    checks: tuple[int | None, ...]  # exit codes of the --check commands, in order


def _pump(src: IO[bytes], dst: IO[bytes], keep: bytearray) -> None:
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        keep += chunk
        with contextlib.suppress(OSError, ValueError):
            dst.write(chunk)
            dst.flush()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGINT, _GRACE), (signal.SIGTERM, _GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class _Agent:
    """The agent process, its output streamed through to ours as it comes and kept. A Ctrl-C that comes
    before `wait` (the session is still starting) is held and acted on there, so the pack is still written."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self.held = False
        # Ctrl-C or SIGTERM while the session starts is held until `wait` (a signal that was ignored stays so),
        # from before the agent starts: one that comes as soon as its first output shows is held too.
        self._previous: dict[
            signal.Signals, signal.Handlers | Callable[[int, FrameType | None], object] | int | None
        ] = {}
        if threading.current_thread() is threading.main_thread():  # where Python runs signal handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._hold)
        self.started_ns, self.started = time.time_ns(), time.monotonic()
        try:
            self.proc = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            self._release()
            raise UsageError(
                f"cannot start the agent {argv[0]!r}: {e.strerror}; check the command after --"
            ) from e
        self.out, self.err = bytearray(), bytearray()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.pumps = [
            threading.Thread(target=_pump, args=(self.proc.stdout, sys.stdout.buffer, self.out), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, sys.stderr.buffer, self.err), daemon=True),
        ]
        for t in self.pumps:
            t.start()

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        self.held = True

    def _release(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def wait(self, timeout: float | None) -> tuple[int | None, bool]:
        """Wait for the agent's end, `timeout` seconds from its start at most; (exit code, interrupted)."""
        self._release()
        proc, interrupted = self.proc, False
        try:
            if self.held:
                raise KeyboardInterrupt
            proc.wait(None if timeout is None else max(0.0, self.started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(proc)
        except KeyboardInterrupt:
            interrupted = True
            _stop(proc)
        finally:
            self.stop()
        code = (
            None
            if interrupted or proc.returncode is None or (timeout and proc.returncode < 0)
            else proc.returncode
        )
        return code, interrupted

    def stop(self) -> None:
        self._release()
        if self.proc.poll() is None:
            _stop(self.proc)
        for t in self.pumps:
            t.join(5)


def record_command(
    argv: Sequence[str],
    out: Path,
    *,
    repo: Path = Path("."),
    checks: Sequence[str] = (),
    timeout: float | None = None,
    options: RecordOptions | None = None,
    capture_files: Sequence[str] = (),
    finishing: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
) -> WrapResult:
    """Record `argv` as an agent session into the pack `out`; see the module docstring. `finishing()` is
    entered once the agent and the checks are done and left once the pack is written (a status line)."""
    if not argv:
        raise UsageError(
            "no agent command: put it after --, e.g. runner record --out s.tar.zst -- python agent.py"
        )
    options = dataclasses.replace(options or RecordOptions(), set_environ=False)
    cwd = Path.cwd()
    if shutil.which(argv[0], path=os.environ.get("PATH")) is None:
        raise UsageError(
            f"cannot start the agent {argv[0]!r}: not found or not executable; check the command after --"
        )
    # Every setting is checked before the agent starts: a bad one must not cost the user the session. The
    # repository and the agent's folder first: refusing them needs no proxy (whose stop waits for its start).
    git = gitstate.read_state(repo)
    rel_cwd = _relative_cwd(cwd, git.root)
    captured = agentcmd.read_capture_files(capture_files)
    proxy = RecordingProxy(
        os.urandom(32),  # secrets.token_bytes, without importing hashlib before the agent starts
        upstream_ca=options.upstream_ca,
        record_loopback=options.record_loopback,
        set_environ=False,
    )
    taken = baseline.take(Path(out).absolute(), git, options, proxy)
    try:
        agent = _Agent(argv, cwd, proxy.agent_env(None))
        try:
            return _record(
                agent, argv, cwd, rel_cwd, out, repo, checks, timeout, options, captured, taken, finishing
            )
        finally:
            agent.stop()  # when the session could not start: the agent must not outlive `runner record`
    finally:
        proxy.stop()  # both done by the session's end already, unless it never started
        shutil.rmtree(taken.workdir, ignore_errors=True)


def _relative_cwd(cwd: Path, root: Path) -> str:
    """Where the agent runs, relative to the repository's top level; RecordError when outside it."""
    try:
        return cwd.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        raise RecordError(
            f"the agent would run in {cwd}, outside the repository {root}; "
            "run `runner record` from inside it or pass the right --repo"
        ) from None


def _record(
    agent: _Agent,
    argv: Sequence[str],
    cwd: Path,
    rel_cwd: str,
    out: Path,
    repo: Path,
    checks: Sequence[str],
    timeout: float | None,
    options: RecordOptions,
    captured: Sequence[tuple[str, bytes]],
    taken: baseline.Baseline,
    finishing: Callable[[], contextlib.AbstractContextManager[object]] | None,
) -> WrapResult:
    """The session around the running agent, imported and started now (see the module docstring)."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Status, StatusCode

    from runner import typedjson
    from runner.pack import manifest as mf
    from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, SPAN_TYPE
    from runner.recorder.session import Session

    session = Session(out, repo, options, environ=dict(os.environ), baseline=taken)
    interrupted = False
    agent_code: int | None = None
    check_codes: list[int | None] = []
    with contextlib.ExitStack() as ending, session:
        plan = agentcmd.plan(
            argv, cwd=cwd, root=session.git.root, console_scripts=session.console_scripts,
            capture=captured,
        )  # fmt: skip
        session.warnings += plan.warnings
        session.agent_files = tuple((f.file.member, f.data) for f in plan.files)
        with session.tracer.start_as_current_span(
            "agent",
            kind=otel_trace.SpanKind.INTERNAL,
            attributes={
                SPAN_TYPE: "task",
                SPAN_INPUT: typedjson.dumps({"args": [list(argv)], "kwargs": {"cwd": rel_cwd}}),
                "runner.agent.argv": list(argv),
            },
            start_time=agent.started_ns,
        ) as span:
            agent_code, interrupted = agent.wait(timeout)
            span.set_attributes(
                {
                    "runner.agent.exit_code": -1 if agent_code is None else agent_code,
                    "runner.agent.duration_s": time.monotonic() - agent.started,
                    "runner.agent.interrupted": interrupted,
                    SPAN_OUTPUT: typedjson.dumps({"exit_code": agent_code}),
                }
            )
            session.artifact(bytes(agent.out), name="agent.stdout", media_type="text/plain")
            session.artifact(bytes(agent.err), name="agent.stderr", media_type="text/plain")
            if agent_code != 0:
                why = (
                    "interrupted"
                    if interrupted
                    else f"agent killed after its {timeout:g}s timeout"
                    if agent_code is None
                    else f"agent exited with code {agent_code}"
                )
                span.set_status(Status(StatusCode.ERROR, why))
                session.mark_failed(why)
            patch = session.capture_patch(reason="changes made by the agent")
        session.agent_command = mf.AgentCommand(
            argv=plan.argv,
            cwd=rel_cwd,
            env=session.env_policy.verbatim,
            timeout=timeout,
            stdin="closed",
            argv_recorded=plan.argv_recorded,
            console_script=plan.console_script,
            files=tuple(f.file for f in plan.files),
            exit_code=agent_code,
        )
        session.agent_patch = patch.step_id if patch is not None else None
        if not interrupted:
            for check in checks:
                result = session.run_tool(
                    ["/bin/sh", "-c", check], cwd=session.git.root, name=f"check {check}"
                )
                check_codes.append(result.exit_code)
        if finishing is not None:  # left after the session's end, which writes the pack
            ending.enter_context(finishing())
    return WrapResult(session.summary, agent_code, interrupted, tuple(check_codes))
