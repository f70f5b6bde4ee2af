"""Real third-party agents from PyPI, recorded and replayed in Docker with their model server stopped.

Each agent is installed into its own cached virtualenv (tests/agents/venvs.py, `make test-agents`) and
configured as its documentation says, against an OpenAI-compatible server on loopback answering from a
script (tests/agents/scripted_server.py). It works on a real repository: the source distribution of `six`
from PyPI, with one line broken so `test_byte2int` fails. `runner record` records it with the check;
`runner replay` and `runner replay --rerun-agent` then reproduce it offline. A pack recorded from a script
with an answer changed after recording (the agent's tool call then fails) makes `--rerun-agent` diverge,
with what happened (`agent-failed` or `cassette-miss`) and what to do next in the report's first lines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.pack.build import PackBuilder
from runner.pack.layout import MANIFEST, SIGNATURE
from runner.privacy.mask import PrivacyOptions
from tests.agents.scripted_server import Scripted, scripted_server
from tests.agents.venvs import LLM, ensure, source_package
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


def _tool_call(old: str) -> dict[str, Any]:
    arguments = json.dumps({"path": "six.py", "old": old, "new": FIXED})
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": "replace_in_file", "arguments": arguments},
    }


@dataclass(frozen=True)
class AgentRun:
    argv: tuple[str, ...]
    capture: tuple[Path, ...]


def _llm(home: Path, server: Scripted) -> AgentRun:
    """llm (simonw/llm): an extra OpenAI-compatible model in `extra-openai-models.yaml` under its user
    folder (`~/.config/io.datasette.llm`), as its documentation on OpenAI-compatible models says."""
    config = home / ".config" / "io.datasette.llm" / "extra-openai-models.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"- model_id: scripted\n  model_name: scripted-model\n  api_base: {server.base}\n  supports_tools: true\n"
    )
    return AgentRun(("llm", "-m", "scripted", "--functions", TOOLS, "--no-log", TASK), (config,))


AGENTS: dict[str, tuple[Any, Callable[[Path, Scripted], AgentRun]]] = {"llm": (LLM, _llm)}


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


def _record(tmp_path: Path, name: str, answers: list[dict[str, Any]], out: Path) -> tuple[Path, Scripted]:
    spec, configure = AGENTS[name]
    bin_dir = ensure(spec)
    repo, home = _repo(tmp_path / out.stem), tmp_path / out.stem / "home"
    with scripted_server(answers) as server:
        agent = configure(home, server)
        capture = [a for path in agent.capture for a in ("--capture-file", str(path))]
        proc = runner(
            "record", "--out", str(out), "--agent", name, "--check", CHECK, *capture, "--", *agent.argv,
            cwd=repo, env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, server


def _replay(pack: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = runner("replay", str(pack), "--json", "report.json", *extra, cwd=tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    return proc.returncode, doc["packs"][0], proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_real_agent_replays_and_reruns_offline(own_images: Any, tmp_path: Path, name: str) -> None:
    pack = tmp_path / f"{name}.tar.zst"
    repo, server = _record(
        tmp_path, name, [{"tool_calls": [_tool_call(BROKEN)]}, {"content": "Fixed."}], pack
    )
    assert len(server.requests) == 2 and (repo / "six.py").read_text().count(FIXED) == 1
    m = pack_summary.inspect(pack).manifest
    assert m.recording is not None and m.recording.model_exchanges == 2 and m.recording.loopback
    assert m.agent.command is not None and m.agent.command.files  # the captured configuration
    code, report, out = _replay(pack, tmp_path)  # the server is stopped: the cassette answers
    assert code == 0 and report["verdict"] == "reproduced", out
    code, report, out = _replay(pack, tmp_path, "--rerun-agent")
    assert code == 0 and report["verdict"] == "reproduced", out
    agent_step = next(s for s in report["steps"] if s["kind"] == "patch")
    assert "re-run agent reproduced the patch (exit 0)" in agent_step["summary"], agent_step
    assert report["cassettes"]["served"] == 2 and report["cassettes"]["misses"] == []


def _with_changed_answer(pack: Path, out: Path, old: str, new: str) -> Path:
    """`pack` rebuilt with its cassette's answers changed (`old` -> `new`), as if the scripted server had
    answered differently when recording: a pack as valid as a recorded one (the pack format's own builder)."""
    unpacked = pack_read.extract(pack, out.parent / f"{out.stem}-members")
    with PackBuilder() as builder:
        for path in sorted(unpacked.path.rglob("*")):
            member = path.relative_to(unpacked.path).as_posix()
            if path.is_file() and member not in {MANIFEST, SIGNATURE}:
                data = path.read_bytes()
                builder.add_bytes(
                    member, data.replace(old.encode(), new.encode()) if "cassettes/" in member else data
                )
        builder.build(replace(unpacked.manifest, integrity=None), out, privacy=PrivacyOptions(policy=None))
    return out


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_changed_answer_makes_the_rerun_diverge_with_what_happened_first(
    own_images: Any, tmp_path: Path, name: str
) -> None:
    """The recorded answer now asks for a replacement the tree does not hold: the re-run agent's tool
    fails, so it exits non-zero or sends a request the cassette does not hold; the report says which, first."""
    pack = tmp_path / f"{name}.tar.zst"
    _record(tmp_path, name, [{"tool_calls": [_tool_call(BROKEN)]}, {"content": "Fixed."}], pack)
    changed = _with_changed_answer(
        pack, tmp_path / f"{name}-changed.tar.zst", "itemgetter(-1)", "itemgetter(7)"
    )
    code, report, out = _replay(changed, tmp_path, "--rerun-agent")
    assert code == 1 and report["cause"] in ("agent-failed", "cassette-miss"), out
    first = [line for line in out.splitlines() if line.strip()][:4]
    assert first[0].startswith(f"{changed.name}: {report['cause']}: "), out
    assert any(line.startswith("  next: ") for line in first), out
    assert report["next_step"], report
