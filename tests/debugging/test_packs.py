"""debug_pack and `runner debug`: replaying a span of a pack or traces.jsonl under pdb."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.debugging import CheckpointManager
from runner.errors import DebugError
from runner.observability import export_jsonl
from runner.pack import files
from tests.debugging.recording import ROOT, TESTS, record_research
from tests.packfactory import make_pack, raw_members, write_pack, zstd_bomb


def _pack(tmp: Path, traces: Path) -> Path:
    return make_pack(tmp, files={"traces.jsonl": traces.read_bytes()})


def _runner(*args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
        timeout=120,
    )  # fmt: skip


def test_a_real_pdb_session_through_the_cli(tmp_path: Path) -> None:
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    state = CheckpointManager().save_checkpoint(rec.after_query_1, "after_q1.ckpt")
    pack = _pack(tmp_path, traces)
    commands = "p self.memory\nn\nn\np result\nc\n"
    proc = _runner(
        "debug", str(pack), "--span", rec.spans["query_2"], "--function", "research_agent:ResearchAgent.research",
        "--mock", "llm=research_agent.call_llm", "--state", str(state), stdin=commands, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "(Pdb)" in out
    assert '-> self.memory.append({"query": query})' in out  # stopped at the first line of research()
    assert "[{'query': 'What is AI safety?'}, {'result': 'recorded: WHAT IS AI SAFETY?'}]" in out
    assert "-> result = self.call_llm(query)" in out  # `n` stepped one line
    assert "'recorded: WHAT ARE THE RISKS?'" in out  # `p result` after the mocked call
    assert "Replay finished. Final result: 'recorded: WHAT ARE THE RISKS?'" in out
    # The recorded input of the span was the call's argument: the plain traces.jsonl works the same way.
    again = _runner(
        "debug", str(traces), "--span", rec.spans["query_2"], "--function", "research_agent:ResearchAgent.research",
        "--mock", "llm=research_agent.call_llm", "--state", str(state), stdin="c\n", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "Final result: 'recorded: WHAT ARE THE RISKS?'" in again.stdout


def test_cli_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    missing = _runner("debug", str(traces), "--span", "0" * 15 + "1", "--function", "research_agent:call_llm",
                      cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and "is not in" in missing.stderr
    bad_mock = _runner("debug", str(traces), "--span", rec.spans["query_2"], "--function",
                       "research_agent:call_llm", "--mock", "llm", cwd=tmp_path)  # fmt: skip
    assert bad_mock.returncode == 2 and "span_type=import.path" in bad_mock.stderr

    link = tarfile.TarInfo("traces.jsonl")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    valid = raw_members(make_pack(tmp_path))
    odd = write_pack(
        tmp_path / "odd.tar.zst", [link if name == "traces.jsonl" else (name, data) for name, data in valid]
    )
    refused = _runner("debug", str(odd), "--span", "1" * 16, "--function", "research_agent:call_llm",
                      cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "traces.jsonl" in refused.stderr, refused.stderr


def test_debug_pack_replays_a_plain_function_with_the_spans_recorded_input(tmp_path: Path) -> None:
    from runner.debugging import debug_pack

    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    out = io.StringIO()
    # The LLM span's input was {"args": ["What are the risks?"], "kwargs": {}}; the real function runs.
    result = debug_pack(
        traces, rec.spans["llm_1"], "research_agent:call_llm", stdin=io.StringIO("p prompt\nc\n"), stdout=out
    )
    assert result == "Answer to: What are the risks?"
    assert "(Pdb) 'What are the risks?'" in out.getvalue()
    assert "Agent state: none (plain function)" in out.getvalue()
    with pytest.raises(DebugError, match=r"--state needs --function module:Class\.method"):
        debug_pack(traces, rec.spans["llm_1"], "research_agent:call_llm", state_file=traces)


class _Counted(io.RawIOBase):
    """A file that adds what is written to it to a shared tally."""

    def __init__(self, inner: io.BufferedWriter, tally: list[int]) -> None:
        self.inner, self.tally = inner, tally

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.tally[0] += len(b)
        return self.inner.write(b)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _debug_counting_bytes(pack: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, int]:
    """Run `runner debug PACK` in process; exit code, stderr and the bytes written from the pack."""
    tally = [0]
    create = files.DirWriter.create
    monkeypatch.setattr(files.DirWriter, "create", lambda self, name: _Counted(create(self, name), tally))
    result = CliRunner().invoke(app, ["debug", str(pack), "--span", "1" * 16, "--function", "os:getcwd"])
    return result.exit_code, result.stderr, tally[0]


@pytest.mark.parametrize("declared", [64 << 20, 10])
def test_a_zstd_bomb_member_is_refused_before_its_bytes_reach_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declared: int
) -> None:
    # 64 MiB of zeros, a few KB compressed, under a wrong hash: declared as 64 MiB (the hash fails at its
    # end) or as 10 bytes (the size fails at its header).
    pack = zstd_bomb(tmp_path, "env/big.bin", 64 << 20, declared=declared)
    assert pack.stat().st_size < 100_000
    code, stderr, written = _debug_counting_bytes(pack, monkeypatch)
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "env/big.bin" in stderr and "Traceback" not in stderr
    assert written == 0  # nothing from a pack that fails its check, not even the manifest


def test_debug_writes_only_the_trace_of_a_valid_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    # A valid pack holding 32 MiB of zeros that debug does not need: checked, never written.
    big = hashlib.sha256(bytes(32 << 20)).hexdigest()
    pack = zstd_bomb(tmp_path, "env/big.bin", 32 << 20, declared=32 << 20, sha256=big)
    code, stderr, written = _debug_counting_bytes(pack, monkeypatch)
    assert code == 2 and "1111111111111111" in stderr  # the pack checked out; the span is not in it
    assert 0 < written < 64 * 1024  # the manifest and traces.jsonl


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ('{"a": {"$timedelta": [1000000000000, 0, 0]}}', r"\['a'\]: malformed \$timedelta value"),
        ('{"a": {"$timedelta": [1e300, 0, 0]}}', r"\['a'\]: malformed \$timedelta value"),
        ('{"a": 1' + "1" * 5000 + "}", "is not JSON .*4300 digits"),
        ("[" * 100_000 + "]" * 100_000, r"is not JSON \(nested too deeply\)"),
        ('{"$tuple": [' * 150 + "1" + "]}" * 150, "nested more than 200 levels deep"),
        ('{"a": {"$datetime": "0000-01-01T00:00:00"}}', r"malformed \$datetime value \(year 0"),
    ],
    ids=["timedelta-int", "timedelta-float", "5001-digits", "deep-json", "deep-tags", "year-0"],
)
def test_a_bad_state_file_is_one_line_and_exit_2(tmp_path: Path, state: str, says: str) -> None:
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    (tmp_path / "state.json").write_text(state)
    result = CliRunner().invoke(
        app,
        ["debug", str(traces), "--span", rec.spans["query_2"], "--function",
         "research_agent:ResearchAgent.research", "--state", str(tmp_path / "state.json")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert re.search(says, result.stderr), result.stderr


def test_debug_never_imports_the_module_a_state_checkpoint_names(tmp_path: Path) -> None:
    import dataclasses

    marker = tmp_path / "imported"
    (tmp_path / "planted_agent.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Agent: pass\n")
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    manager = CheckpointManager(tmp_path)
    real = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"], capture_git=False)
    state = manager.save_checkpoint(dataclasses.replace(real, agent_module="planted_agent"), "planted.ckpt")
    result = CliRunner().invoke(
        app,
        ["debug", str(traces), "--span", rec.spans["query_2"], "--function", "research_agent:ResearchAgent.research",
         "--mock", "llm=research_agent.call_llm", "--state", str(state)],
        input="c\n",
    )  # fmt: skip
    # The instance is of the class --function names (the user's choice); the checkpoint gives only state.
    assert result.exit_code == 0, result.output
    assert "Final result: 'recorded: WHAT ARE THE RISKS?'" in result.stdout
    assert not marker.exists()
