from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.engine import images

pytestmark = pytest.mark.docker


def test_doctor_is_happy_with_a_running_engine_and_built_images(docker_client: Any) -> None:
    built = images.ensure(docker_client)
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["problems"] == []
    assert data["engine"]["version"] == docker_client.version()["Version"]
    assert data["engine"]["started_by_us"] is False
    assert {(i["tag"], i["id"]) for i in data["images"]} == {
        (built.base.tag, built.base.id),
        (built.proxy.tag, built.proxy.id),
    }
