from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from runner.cli import app
from runner.engine import doctor


@pytest.fixture
def no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "dead.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    return f"unix://{path}"


def test_check_without_engine_lists_the_fix(no_engine: str) -> None:
    found = doctor.check(fix=False)
    assert not found.ok and found.engine is None and found.images == ()
    assert [p.fix for p in found.problems] == ["runner doctor --fix"]
    assert no_engine in found.problems[0].what
    assert found.libraries["docker"] and found.libraries["mitmproxy"]


def test_doctor_json_exits_3_and_names_the_problem(no_engine: str) -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["engine"] is None
    assert data["problems"][0]["fix"] == "runner doctor --fix"
    assert set(doctor.LIBRARIES) == set(data["libraries"])


def test_rendered_checkup_shows_problem_fix_and_missing_images() -> None:
    found = doctor.Checkup(
        engine=None,
        images=(doctor.ImageCheck("base", "runner-base:abc", False, None),),
        python="CPython 3.11",
        libraries={"docker": "7.1.0", "zstandard": None},
        problems=(doctor.Problem("image runner-base:abc (base) is missing", "runner images build"),),
    )
    console = Console(width=200, record=True)
    console.print(doctor.render_checkup(found))
    text = console.export_text()
    assert "none answers" in text and "runner-base:abc  missing" in text
    assert "zstandard" in text and "missing" in text
    assert "fix: runner images build" in text and "1 problem(s)" in text


def test_images_build_refuses_an_unpinned_base_before_touching_anything(no_engine: str) -> None:
    result = CliRunner().invoke(app, ["images", "build", "--base-from", "debian:bookworm"])
    assert result.exit_code == 2
    assert "not pinned by digest" in result.stderr
