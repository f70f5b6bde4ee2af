"""The recorder SDK: an example agent's pack verifies and re-runs, git state, sampling, crashes, debugging."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from runner.errors import RecordError
from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.pack import traces
from runner.recorder import record
from tests.gitrepo import git, make_repo, write
from tests.helpers.https_server import https_server
from tests.hostreplay import rerun

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packs" / "src" / "sdk-agent"
PLANTED = {
    "OPENAI_API_KEY": "sk-proj-plantedOpenAIkey0123456789abcdefXYZ",
    "GITHUB_TOKEN": "ghp_plantedGitHubToken0123456789abcdefXY",
}
HOST_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def members(pack_path: Path) -> dict[str, bytes]:
    """Every member of a pack, decompressed."""
    out = {}
    with (
        open(pack_path, "rb") as f,
        zstandard.ZstdDecompressor().stream_reader(f) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        for member in tar:
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out


def copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "base")
    return dest


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", HOST_ENV["PATH"])


def test_sdk_agent_pack_verifies_and_reproduces_with_the_server_stopped(
    tmp_path: Path, planted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agent  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLE))
    repo = copy_repo(EXAMPLE / "repo", tmp_path / "repo")
    out = tmp_path / "sdk.tar.zst"
    with https_server(tmp_path) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base + "/v1")
        assert agent.main(repo, out, upstream_ca=server.ca.cert_path, record_loopback=True) == 0
    assert "HTTPS_PROXY" not in os.environ  # restored after the block

    assert pack_read.verify(out).ok
    m = pack_summary.inspect(out).manifest
    assert [type(s).__name__ for s in m.steps] == ["CommandStep", "PatchStep", "CommandStep"]
    first, patch, second = m.steps
    assert isinstance(first, mf.CommandStep) and first.expect.exit_code == 1
    assert isinstance(second, mf.CommandStep) and second.expect.exit_code == 0
    assert second.compare.outputs == {"junit.xml": "junit"}
    assert set(second.compare.stdout) == mf.NORMALISERS
    assert m.llm is not None and (m.llm.model, m.llm.seed, m.llm.temperature) == ("gpt-4o-mini", 424242, 0)
    assert m.environment.kind == "snapshot" and m.environment.snapshot is not None
    assert m.cassettes[0].count == 1

    files = members(out)
    exchange = json.loads(files["cassettes/http.jsonl"])
    assert exchange["request"]["path"] == "/v1/chat/completions"
    assert json.loads(exchange["request"]["body"]["text"])["seed"] == 424242
    assert json.loads(files["prompts/0001-request.json"])["seed"] == 424242
    assert files["prompts/0001-system.txt"].startswith(b"You fix Python bugs")
    assert b"min(value, low)" in files["prompts/0001-user.txt"]
    assert b"min(value, high)" in files[patch.patch]  # type: ignore[union-attr]
    for value in PLANTED.values():
        assert all(value.encode() not in data for data in files.values())

    spans = traces.read_spans(_extract(files, tmp_path, "traces.jsonl"))
    by_type = {s.attributes.get("runner.span.type"): s for s in spans}
    assert set(by_type) >= {"session", "task", "tool", "llm", "patch", "artifact", "http"}
    llm = by_type["llm"]
    assert llm.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert llm.attributes["gen_ai.request.seed"] == 424242
    assert llm.attributes["gen_ai.request.temperature"] == 0
    assert llm.attributes["gen_ai.usage.input_tokens"] == 3
    assert json.loads(str(llm.attributes["gen_ai.input.messages"]))[0]["role"] == "system"
    assert str(llm.attributes["gen_ai.response.id"]).startswith("chatcmpl-")
    for span in spans:
        assert span.attributes["runner.session.id"] == m.session.id
        assert span.attributes["runner.git.commit"] == m.git.base_commit
        assert "runner.env.snapshot_id" in span.attributes
    assert by_type["patch"].attributes["runner.patch.authoring_span"] == by_type["task"].span_id

    # The model server is gone: the steps re-run from the pack alone and reproduce.
    assert rerun(out, tmp_path / "replay", HOST_ENV) == []


def _extract(files: dict[str, bytes], tmp_path: Path, name: str) -> Path:
    target = tmp_path / "extracted" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(files[name])
    return target


def test_dirty_baseline_holds_untracked_and_binary_files_and_leaves_the_index_alone(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n", "b.txt": "two\n"})
    write(repo, {"a.txt": "one changed\n", "new/untracked.txt": "fresh\n"})
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    git(repo, "add", "b.txt")
    index_before = (repo / ".git" / "index").read_bytes()
    status_before = git(repo, "status", "--porcelain")
    out = tmp_path / "dirty.tar.zst"
    with record(out=out, repo=repo, agent="t", http=False) as session:
        (repo / "b.txt").write_text("two edited\n")
        (repo / "img.bin").write_bytes(b"\x00\xff" * 300)
        captured = session.capture_patch(reason="edit b and add a binary")
        assert captured is not None and captured.before_tree != captured.after_tree
        assert session.capture_patch(reason="nothing new") is None
    assert (repo / ".git" / "index").read_bytes() == index_before
    status_after = git(repo, "status", "--porcelain")
    assert status_after.replace(" M b.txt\n", "").replace("?? img.bin\n", "") == status_before.replace(
        " M b.txt\n", ""
    )
    m = pack_summary.inspect(out).manifest
    assert m.git.dirty and m.git.baseline_patch == mf.BASELINE_PATH
    files = members(out)
    assert b"new/untracked.txt" in files[mf.BASELINE_PATH] and b"GIT binary patch" in files[mf.BASELINE_PATH]
    assert not any(name.endswith(".pack") for name in os.listdir(repo))
    work = tmp_path / "replay"
    assert rerun(out, work) == []
    assert (work / "ws" / "img.bin").read_bytes() == b"\x00\xff" * 300
    assert (work / "ws" / "blob.bin").read_bytes() == bytes(range(256))
    assert (work / "ws" / "b.txt").read_text() == "two edited\n"


def test_a_crash_inside_the_block_still_writes_a_pack_marked_failed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "crash.tar.zst"
    with pytest.raises(ZeroDivisionError), record(out=out, repo=repo, http=False, artifacts="failing-only"):
        (repo / "a.txt").write_text("half done\n")
        raise ZeroDivisionError("agent bug")
    assert pack_read.verify(out).ok
    files = members(out)
    session = next(s for s in traces.iter_spans(files["traces.jsonl"].splitlines()) if s.name == "session")
    assert session.status.code == "ERROR" and "agent bug" in (session.status.description or "")
    assert session.attributes["runner.sampling.artifacts"] == "kept"
    assert b"half done" in files["patches/0001.diff"]  # the end-of-session patch keeps what was changed


def test_a_recorded_pack_can_be_debugged_at_a_task_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.debugging import debug_pack

    module = tmp_path / "mods" / "rec_agent_mod.py"
    module.parent.mkdir()
    module.write_text(
        "def model(**params):\n"
        "    return {'text': 'live answer'}\n\n"
        "def solve(question):\n"
        "    return model(prompt=question)['text'].upper()\n"
    )
    monkeypatch.syspath_prepend(str(module.parent))
    import rec_agent_mod  # type: ignore[import-not-found]

    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "debug.tar.zst"
    with (
        record(out=out, repo=repo, http=False) as s,
        s.task("solve", input={"args": ["why?"], "kwargs": {}}) as task,
    ):
        answer = s.llm_call(lambda **p: {"text": "recorded answer"}, model="m", temperature=0, prompt="why?")
        task.set_output(answer["text"].upper())
    result = debug_pack(
        out, task.span_id, "rec_agent_mod:solve", mock_config={"llm": "rec_agent_mod.model"},
        stdin=io.StringIO("c\n"), stdout=io.StringIO(),
    )  # fmt: skip
    assert result == "RECORDED ANSWER"
    assert rec_agent_mod.solve("x") == "LIVE ANSWER"  # the mock was undone


def test_the_cli_debug_command_reads_a_recorded_pack(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "cli-debug.tar.zst"
    with record(out=out, repo=repo, http=False) as s:
        result = s.run_tool(["sh", "-c", "echo from-tool"])
    (tmp_path / "tools_mod.py").write_text("def tool(argv, cwd):\n    return ' '.join(argv) + ' in ' + cwd\n")
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "debug", str(out), "--span", result.span_id, "--function", "tools_mod:tool"],
        input="p argv\nc\n", capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "['sh', '-c', 'echo from-tool']" in proc.stdout


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    plain_folder = tmp_path / "plain"
    plain_folder.mkdir()
    with (
        pytest.raises(RecordError, match="not a git repository"),
        record(out=tmp_path / "x.tar.zst", repo=plain_folder, http=False),
    ):
        pass
    with (
        pytest.raises(RecordError, match="no such folder"),
        record(out=tmp_path / "nope" / "x.tar.zst", repo=plain_folder),
    ):
        pass
    assert not list(tmp_path.glob("*.tar.zst*"))


def test_sdk_env_allow_and_env_secret_decide_variables_and_model_calls_without_a_cassette_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    monkeypatch.setenv("DB_DSN", "sqlite:///tmp/x.db")
    monkeypatch.setenv("AGENT_MODE", "fast")
    monkeypatch.setenv("CONFIG_LEVEL", "3")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    out = tmp_path / "sdk.tar.zst"
    with record(out=out, repo=repo, http=False, env_allow=["DB_DSN"], env_secret=["AGENT_MODE"]) as session:
        pass
    variables = session.summary.manifest.environment.variables
    assert (variables["DB_DSN"].action, variables["DB_DSN"].reason) == ("verbatim", "user-allow")
    assert (variables["AGENT_MODE"].action, variables["AGENT_MODE"].reason) == ("placeholder", "user-secret")
    snapshot_env = json.loads(members(out)["env/snapshot.json"])["env"]
    assert snapshot_env["CONFIG_LEVEL"] == "3" and snapshot_env["AGENT_MODE"] != "fast"
    (warning,) = session.summary.warnings
    assert "OPENAI_BASE_URL" in warning and "--no-http" in warning
