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
