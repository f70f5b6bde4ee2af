"""`runner contract`: the tools and prompts advertised to the model against a baseline; widening fails,
narrowing passes with a note, prompt changes are reported (and fail with --strict-prompts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.drift.contract import Contract, compare
from tests.drift.test_check import TOOL, sdk_pack
from tests.helpers.model_server import ModelServer, model_server


@pytest.fixture
def server() -> Any:
    with model_server() as s:
        yield s


def _tool(**changes: Any) -> dict[str, Any]:
    tool = copy.deepcopy(TOOL)
    params = tool["function"]["parameters"]
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = params
        for p in parents:
            target = target[p]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return tool


def _contract(runner: CliRunner, pack: Path, baseline: Path, *extra: str) -> Any:
    return runner.invoke(app, ["contract", str(pack), "--baseline", str(baseline), *extra])


def test_a_widened_tool_schema_fails_and_a_narrowed_one_passes_with_a_note(
    tmp_path: Path, server: ModelServer
) -> None:
    runner, baseline = CliRunner(), tmp_path / "contract.json"
    written = _contract(runner, sdk_pack(tmp_path, server, "base"), baseline, "--write-baseline")
    assert written.exit_code == 0, written.output
    assert json.loads(baseline.read_text())["tools"]["edit_file"]["schema"] == TOOL["function"]["parameters"]

    wider = _tool(properties__path__maxLength=None, properties__mode__enum=["write", "append", "delete"])
    widened = _contract(runner, sdk_pack(tmp_path, server, "wide", tool=wider), baseline)
    assert widened.exit_code == 1, widened.output
    assert 'WIDENS  tool edit_file: properties.mode.enum: new values: "delete"' in widened.output
    assert "WIDENS  tool edit_file: properties.path.maxLength: 200 -> none" in widened.output

    narrower = _tool(properties__path__maxLength=80, properties__mode__enum=["write"])
    narrowed = _contract(runner, sdk_pack(tmp_path, server, "narrow", tool=narrower), baseline)
    assert narrowed.exit_code == 0, narrowed.output
    assert "narrows tool edit_file: properties.path.maxLength: 200 -> 80" in narrowed.output
    assert "contract holds (2 narrowing or prompt changes noted)" in narrowed.output


def test_a_missing_baseline_is_bad_input(tmp_path: Path, server: ModelServer) -> None:
    result = _contract(CliRunner(), sdk_pack(tmp_path, server, "a"), tmp_path / "none.json")
    assert result.exit_code == 2 and "--write-baseline" in result.output


def _one(schema: dict[str, Any], prompts: tuple[str, ...] = ("p",)) -> Contract:
    return Contract(prompts, {"t": {"description": "d", "schema": schema}})


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ({"required": ["a"]}, {}, "widens"),
        ({}, {"required": ["a"]}, "narrows"),
        ({"maximum": 5}, {"maximum": 9}, "widens"),
        ({"minimum": 5}, {"minimum": 1}, "widens"),
        ({"additionalProperties": False}, {"additionalProperties": True}, "widens"),
        ({"additionalProperties": True}, {"additionalProperties": False}, "narrows"),
        ({"type": "integer"}, {"type": ["integer", "string"]}, "widens"),
        ({"type": "number"}, {"type": "integer"}, "narrows"),
        ({"pattern": "^a$"}, {}, "widens"),
        ({"properties": {}}, {"properties": {"x": {"type": "string"}}}, "widens"),
    ],
)
def test_schema_changes_are_classified(old: dict[str, Any], new: dict[str, Any], kind: str) -> None:
    changes = compare(_one(old), _one(new))
    assert [c.kind for c in changes] == [kind], changes


def test_a_new_tool_widens_and_prompt_text_is_reported() -> None:
    base = _one({})
    more = Contract(("changed prompt",), {**base.tools, "shell": {"description": None, "schema": {}}})
    kinds = [(c.kind, c.where) for c in compare(base, more)]
    assert ("widens", "tool shell") in kinds and ("prompt", "prompt") in kinds
