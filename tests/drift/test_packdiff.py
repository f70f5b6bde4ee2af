"""`runner diff`: two recordings side by side; the article's case (a retry path that sent temperature 0.2
instead of 0) is named first: the call and the parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests.drift.test_check import sdk_pack
from tests.helpers.model_server import ModelServer, model_server


@pytest.fixture
def server() -> Any:
    with model_server() as s:
        yield s


def test_two_recordings_differing_in_one_temperature_name_that_call_and_parameter_first(
    tmp_path: Path, server: ModelServer
) -> None:
    a = sdk_pack(tmp_path, server, "a")
    b = sdk_pack(tmp_path, server, "b", temperature=0.2)
    same = sdk_pack(tmp_path, server, "a2")

    result = CliRunner().invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 1, result.output
    first = result.output.splitlines()[0]
    assert first == "1 difference; the first: call #2: temperature: 0 vs 0.2", result.output

    as_json = CliRunner().invoke(app, ["diff", str(a), str(b), "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["same"] is False
    assert data["differences"][0] == {
        "area": "model call", "where": "call #2", "what": "temperature", "a": "0", "b": "0.2",
    }  # fmt: skip

    # Two recordings of the same session: ids, timestamps and span ids differ, nothing that matters does.
    again = CliRunner().invoke(app, ["diff", str(a), str(same)])
    assert again.exit_code == 0, again.output
    assert "the two recordings are the same" in again.output


def test_a_changed_answer_and_prompt_are_shown(tmp_path: Path, server: ModelServer) -> None:
    a = sdk_pack(tmp_path, server, "a")
    server.text = "Another answer."
    b = sdk_pack(tmp_path, server, "b")
    result = CliRunner().invoke(app, ["diff", str(a), str(b), "--json"])
    assert result.exit_code == 1
    found = {(d["where"], d["what"]) for d in json.loads(result.stdout)["differences"]}
    assert ("call #2", "answer") in found


def test_a_file_that_is_not_a_pack_is_bad_input(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.zst"
    bogus.write_bytes(b"not a pack")
    result = CliRunner().invoke(app, ["diff", str(bogus), str(bogus)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def _session_pack(tmp: Path, name: str, greeting: str) -> Path:
    """A pack with a patch and a command step whose output depends on `greeting` (no model calls)."""
    from runner.recorder import record
    from tests.gitrepo import make_repo

    repo = tmp / f"repo-{name}"
    make_repo(repo, {"greet.py": "def greet():\n    return 'hi'\n"})
    out = tmp / f"{name}.tar.zst"
    with record(out=out, repo=repo, agent="t", http=False) as s:
        (repo / "greet.py").write_text(f"def greet():\n    return {greeting!r}\n")
        s.capture_patch("fix the greeting")
        s.run_tool(["python", "-c", "import greet; print(greet.greet())"], cwd=repo)
    return out


def test_patches_and_step_outputs_are_compared_line_by_line(tmp_path: Path) -> None:
    a = _session_pack(tmp_path, "a", "hello")
    b = _session_pack(tmp_path, "b", "howdy")
    result = CliRunner().invoke(app, ["diff", str(a), str(b), "--json"])
    assert result.exit_code == 1, result.output
    found = [(d["area"], d["what"], d["a"], d["b"]) for d in json.loads(result.stdout)["differences"]]
    assert ("step", "stdout line 1", '"hello"', '"howdy"') in found
    patch = next(d for d in found if d[0] == "patch")
    assert "hello" in patch[2] and "howdy" in patch[3]
    assert [d[0] for d in found] == sorted((d[0] for d in found), key=["patch", "step"].index)
