"""Real third-party agents from PyPI, recorded and replayed in Docker with their model server stopped.

Each agent is installed into its own cached virtualenv (tests/agents/venvs.py, `make test-agents`) and
configured as its documentation says, against an OpenAI-compatible server on loopback answering from a
script (tests/agents/scripted_server.py) in the agent's own protocol: `llm` (simonw/llm) with a Python
function tool, `mini` (mini-swe-agent, through litellm) with its bash tool. It works on a real repository:
the source distribution of `six` from PyPI, with one line broken so `test_byte2int` fails. `runner record`
records it with the check;
`runner replay` and `runner replay --rerun-agent` then reproduce it offline. A pack recorded from a script
with an answer changed after recording (the agent's tool call then fails) makes `--rerun-agent` diverge,
with what happened (`agent-failed` or `cassette-miss`) and what to do next in the report's first lines.
A re-run agent's clock starts at the recorded start (libfaketime in the base image).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.pack.build import PackBuilder
from runner.pack.layout import MANIFEST, SIGNATURE
from runner.pack.model import Manifest
from runner.privacy.mask import PrivacyOptions
from tests.agents.scripted_server import Scripted, scripted_server
from tests.agents.venvs import LLM, MINI_SWE_AGENT, AgentSpec, ensure, source_package
from tests.gitrepo import make_repo
from tests.integration.test_replay import runner

pytestmark = pytest.mark.docker

BROKEN, FIXED = "byte2int = operator.itemgetter(-1)", "byte2int = operator.itemgetter(0)"
# The tests of six's byte helpers: others depend on the host's Python build (`dbm`), not on the agent.
CHECK = "python -m pytest -q -p no:cacheprovider -p no:warnings test_six.py -k 'byte2int or int2byte or indexbytes'"
TASK = "The test test_byte2int in test_six.py fails. Fix six.py."
# llm's documented way to give a model tools: `--functions` with Python source defining them.
TOOLS = (
    "def replace_in_file(path: str, old: str, new: str) -> str:\n"
    "    import pathlib\n"
    "    p = pathlib.Path(path)\n"
    "    text = p.read_text()\n"
    "    if old not in text:\n"
    "        raise SystemExit(f'{old!r} is not in {path}')\n"
    "    p.write_text(text.replace(old, new, 1))\n"
    "    return 'replaced'\n"
)


def _tool_call(name: str, index: int, **arguments: str) -> dict[str, Any]:
    call = {"name": name, "arguments": json.dumps(arguments)}
    return {"id": f"call_{index}", "type": "function", "function": call}


@dataclass(frozen=True)
class AgentRun:
    argv: tuple[str, ...]
    capture: tuple[Path, ...] = ()  # the agent's configuration files outside the repository
    env: Mapping[str, str] = field(default_factory=dict)  # the agent's configuration variables


@dataclass(frozen=True)
class RealAgent:
    spec: AgentSpec
    configure: Callable[[Path, Scripted], AgentRun]  # (HOME, the running server) -> how to start it
    answers: Callable[[], list[dict[str, Any]]]  # the scripted model's answers, in the agent's protocol


def _llm(home: Path, server: Scripted) -> AgentRun:
    """llm (simonw/llm): an extra OpenAI-compatible model in `extra-openai-models.yaml` under its user
    folder (`~/.config/io.datasette.llm`), as its documentation on OpenAI-compatible models says."""
    config = home / ".config" / "io.datasette.llm" / "extra-openai-models.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"- model_id: scripted\n  model_name: scripted-model\n  api_base: {server.base}\n  supports_tools: true\n"
    )
    return AgentRun(("llm", "-m", "scripted", "--functions", TOOLS, "--no-log", TASK), (config,))


def _llm_answers() -> list[dict[str, Any]]:
    edit = _tool_call("replace_in_file", 1, path="six.py", old=BROKEN, new=FIXED)
    return [{"tool_calls": [edit]}, {"content": "Fixed."}]


def _mini(home: Path, server: Scripted) -> AgentRun:
    """mini-swe-agent: its global configuration is environment variables (docs/advanced/global_configuration
    .md): the model (`MSWEA_MODEL_NAME`, an `openai/` model of litellm, whose server is `OPENAI_API_BASE`),
    the "already configured" switch `MSWEA_CONFIGURED` (no first-run setup questions), cost tracking errors
    ignored for a model litellm has no price for, one attempt per model call; and litellm's documented
    switch for machines without internet access, its bundled model price list (LITELLM_LOCAL_MODEL_COST_MAP)
    instead of a download that fails here. `mini -y` runs the commands without asking, `--exit-immediately`
    exits when the model submits, the task is given with `-t`."""
    env = {
        "MSWEA_CONFIGURED": "true", "MSWEA_MODEL_NAME": "openai/scripted-model", "OPENAI_API_BASE": server.base,
        "OPENAI_API_KEY": "sk-scripted-0123456789", "MSWEA_COST_TRACKING": "ignore_errors",
        "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }  # fmt: skip
    return AgentRun(("mini", "-y", "--exit-immediately", "-t", TASK), env=env)


def _mini_answers() -> list[dict[str, Any]]:
    """Its protocol: a `bash` tool call per turn; `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT` submits. The
    edit fails (exit 1) when six.py does not hold the broken line, as `replace_in_file` does for llm."""
    edit = f"grep -q '{BROKEN}' six.py && sed -i 's/{BROKEN}/{FIXED}/' six.py"
    return [
        {"content": "byte2int takes the last byte; it must take the first.",
         "tool_calls": [_tool_call("bash", 1, command=edit)]},
        {"content": "Fixed.", "tool_calls": [_tool_call("bash", 2, command="echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")]},
    ]  # fmt: skip


AGENTS = {
    "llm": RealAgent(LLM, _llm, _llm_answers),
    "mini-swe-agent": RealAgent(MINI_SWE_AGENT, _mini, _mini_answers),
}


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "six"
    shutil.copytree(source_package("six", "1.16.0"), repo, ignore=shutil.ignore_patterns(".complete"))
    source = repo / "six.py"
    source.write_text(source.read_text().replace(FIXED, BROKEN))
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "six 1.16.0 with byte2int broken"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True
        )
    return repo


def _record(tmp_path: Path, name: str, out: Path, *extra: str) -> tuple[Path, Scripted, AgentRun, str]:
    """Record agent `name` fixing six into `out` (`extra`: more record options); the repository, the
    server, the agent's run, the output."""
    real = AGENTS[name]
    bin_dir = ensure(real.spec)
    repo, home = _repo(tmp_path / out.stem), tmp_path / out.stem / "home"
    with scripted_server(real.answers()) as server:
        agent = real.configure(home, server)
        capture = [a for path in agent.capture for a in ("--capture-file", str(path))]
        proc = runner(
            "record", "--out", str(out), "--agent", name, "--check", CHECK, *capture, *extra, "--", *agent.argv,
            cwd=repo, env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin", **agent.env},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, server, agent, proc.stdout + proc.stderr


def _replay(pack: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = runner("replay", str(pack), "--json", "report.json", *extra, cwd=tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    return proc.returncode, doc["packs"][0], proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_real_agent_replays_and_reruns_offline(own_images: Any, tmp_path: Path, name: str) -> None:
    pack = tmp_path / f"{name}.tar.zst"
    repo, server, agent, out = _record(tmp_path, name, pack)
    assert len(server.requests) == 2 and (repo / "six.py").read_text().count(FIXED) == 1
    assert "(2 model calls)" in out, out  # the recording summary
    m = pack_summary.inspect(pack).manifest
    assert m.recording is not None and m.recording.model_exchanges == 2 and m.recording.loopback
    assert m.agent.command is not None and m.agent.command.exit_code == 0
    assert len(m.agent.command.files) == len(agent.capture)  # the captured configuration
    code, report, out = _replay(pack, tmp_path)  # the server is stopped: the cassette answers
    assert code == 0 and report["verdict"] == "reproduced", out
    code, report, out = _replay(pack, tmp_path, "--rerun-agent")
    assert code == 0 and report["verdict"] == "reproduced", out
    agent_step = next(s for s in report["steps"] if s["kind"] == "patch")
    assert "re-run agent reproduced the patch (exit 0)" in agent_step["summary"], agent_step
    assert report["cassettes"]["served"] == 2 and report["cassettes"]["misses"] == []


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_model_calls_left_out_of_the_cassette_are_warned_about(tmp_path: Path, name: str) -> None:
    """With loopback unrecorded, the agent's calls go straight to the server: the summary and `inspect`
    say the cassette holds no model call, what named the server (a variable or a captured file) and the
    flag that records them."""
    pack = tmp_path / f"{name}.tar.zst"
    _, server, _, out = _record(tmp_path, name, pack, "--no-record-loopback")
    assert len(server.requests) == 2 and "(0 model calls)" in out, out
    m = pack_summary.inspect(pack).manifest
    assert m.recording is not None and m.recording.model_exchanges == 0
    (warning,) = m.recording.warnings
    assert "names a model server (http://127.0.0.1:" in warning and "--no-record-loopback" in warning
    assert warning in " ".join(out.split())
    shown = runner("inspect", str(pack), cwd=tmp_path, env={"COLUMNS": "400"}).stdout
    assert "0 model calls" in shown and "--no-record-loopback" in shown, shown


def repack(
    pack: Path,
    out: Path,
    *,
    cassettes: tuple[str, str] = ("", ""),
    manifest: Callable[[Manifest], Manifest] = lambda m: m,
) -> Path:
    """`pack` rebuilt into `out` with `cassettes[0]` replaced by `cassettes[1]` in its cassettes and its
    manifest edited by `manifest`, as if the recording had gone that way: a pack as valid as a recorded one
    (the pack format's own builder)."""
    unpacked = pack_read.extract(pack, out.parent / f"{out.stem}-members")
    old, new = (part.encode() for part in cassettes)
    with PackBuilder() as builder:
        for path in sorted(unpacked.path.rglob("*")):
            member = path.relative_to(unpacked.path).as_posix()
            if path.is_file() and member not in {MANIFEST, SIGNATURE}:
                data = path.read_bytes()
                builder.add_bytes(member, data.replace(old, new) if old and "cassettes/" in member else data)
        edited = manifest(replace(unpacked.manifest, integrity=None))
        builder.build(edited, out, privacy=PrivacyOptions(policy=None))
    return out


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_changed_answer_makes_the_rerun_diverge_with_what_happened_first(
    own_images: Any, tmp_path: Path, name: str
) -> None:
    """The recorded answer now asks for a replacement the tree does not hold: the re-run agent's tool
    fails, so it exits non-zero or sends a request the cassette does not hold; the report says which, first."""
    pack = tmp_path / f"{name}.tar.zst"
    _record(tmp_path, name, pack)
    changed = repack(
        pack, tmp_path / f"{name}-changed.tar.zst", cassettes=("itemgetter(-1)", "itemgetter(7)")
    )
    code, report, out = _replay(changed, tmp_path, "--rerun-agent")
    assert code == 1 and report["cause"] in ("agent-failed", "cassette-miss"), out
    first = [line for line in out.splitlines() if line.strip()][:4]
    assert first[0].startswith(f"{changed.name}: {report['cause']}: "), out
    assert any(line.startswith("  next: ") for line in first), out
    assert report["next_step"], report


def test_a_rerun_agent_sees_the_recorded_start_time(own_images: Any, tmp_path: Path) -> None:
    """The base image's libfaketime pins the re-run agent's clock at the pack's start (`session.created_at`),
    here moved to 2020 after recording: the agent's `time.time()` is then in 2020, not today."""
    repo, pack = tmp_path / "repo", tmp_path / "clock.tar.zst"
    make_repo(repo, {"a.txt": "a\n"})
    agent = "import time; open('ran.txt', 'w').write('ran'); print('clock', int(time.time()))"
    proc = runner(
        "record", "--no-http", "--out", str(pack), "--", "python", "-c", agent,
        cwd=repo, env={"PATH": f"{ensure(LLM)}:/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    start = "2020-01-02T03:04:05Z"
    past = repack(
        pack, tmp_path / "past.tar.zst",
        manifest=lambda m: replace(m, session=replace(m.session, created_at=start)),
    )  # fmt: skip
    code, report, out = _replay(past, tmp_path, "--rerun-agent")
    assert code == 0 and report["verdict"] == "reproduced", out
    (stdout,) = (tmp_path / report["run_dir"] / "steps").glob("*.agent.stdout")
    clock = int(stdout.read_text().split()[-1])
    pinned = int(datetime.datetime.fromisoformat(start).timestamp())
    assert pinned <= clock < pinned + 600, (clock, pinned)
