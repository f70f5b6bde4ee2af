"""Push, list, show, diff, promote, current and rollback through the CLI on a real git registry: the
pointer, the `live` history of the environment and the audit log (commits) after each move."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.config.conftest import PRINCIPAL, cli, git


def _trailers(root: Path, rev: str = "HEAD") -> dict[str, str]:
    body = git(root, "log", "-1", "--format=%B", rev)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Runner-"))


def test_push_three_promote_and_roll_back_twice(registry: Path) -> None:
    r = str(registry)
    for n in (1, 2, 3):
        result = cli("config", "promote", "production", str(n), "--registry", r, "-m", f"ship {n}")
        assert result.exit_code == 0, result.output
        assert f"production: {n - 1 if n > 1 else 'nothing'} -> version {n}" in result.output
    assert "ungated" in result.output  # no gate in registry.yaml yet

    first = cli("rollback", "production", "--registry", r, "-m", "error rate doubled")
    assert first.exit_code == 0, first.output
    assert "production: 3 -> version 2" in first.output
    assert _trailers(registry) == {
        "Runner-Principal": "alice", "Runner-Action": "rollback", "Runner-Environment": "production",
        "Runner-Version": "2", "Runner-Previous": "3", "Runner-Gate": "ungated",
    }  # fmt: skip
    second = cli("rollback", "production", "--registry", r, principal="bob <bob@example.com>")
    assert second.exit_code == 0, second.output
    assert "production: 2 -> version 1" in second.output  # not back to 3: 3 was rolled back over

    current = cli("config", "current", "production", "--json", "--registry", r)
    doc = json.loads(current.stdout)
    assert (doc["version"], doc["config"]["version"], doc["config"]["temperature"]) == (1, 1, 0)
    assert doc["registry_commit"] == git(registry, "rev-parse", "HEAD").strip()
    env = yaml.safe_load((registry / "environments/production.yaml").read_text())
    assert env == {"environment": "production", "version": 1, "live": [{"version": 1, "gate": "ungated"}]}

    # The audit log: one commit per change, newest first, with who and why.
    log = git(registry, "log", "--format=%an <%ae>|%s").splitlines()
    assert log == [
        "bob <bob@example.com>|rollback production: 2 -> 1",
        f"{PRINCIPAL}|rollback production: 3 -> 2",
        f"{PRINCIPAL}|promote production: 2 -> 3",
        f"{PRINCIPAL}|promote production: 1 -> 2",
        f"{PRINCIPAL}|promote production: - -> 1",
        f"{PRINCIPAL}|push version 3",
        f"{PRINCIPAL}|push version 2",
        f"{PRINCIPAL}|push version 1",
        f"{PRINCIPAL}|init the configuration registry",
    ]
    history = json.loads(cli("config", "history", "--env", "production", "--json", "--registry", r).stdout)
    assert [h["trailers"]["Runner-Version"] for h in history] == ["1", "2", "3", "2", "1"]
    assert history[1]["reason"].startswith("error rate doubled")

    third = cli("rollback", "production", "--registry", r)
    assert third.exit_code == 2
    assert "no known-good version before 1" in third.output
    assert git(registry, "status", "--porcelain") == ""


def test_rollback_to_a_version_and_its_limits(registry: Path) -> None:
    r = str(registry)
    for n in (1, 2, 3):
        assert cli("config", "promote", "staging", str(n), "--registry", r).exit_code == 0
    done = cli("rollback", "staging", "--to", "1", "--registry", r)
    assert done.exit_code == 0 and "staging: 3 -> version 1" in done.output
    never = cli("rollback", "staging", "--to", "3", "--registry", r)
    assert never.exit_code == 2 and "version 3 was never live here before 1" in never.output
    unknown = cli("rollback", "qa", "--registry", r)
    assert unknown.exit_code == 2 and "no environment 'qa'" in unknown.output


def test_list_show_diff(registry: Path) -> None:
    r = str(registry)
    assert cli("config", "promote", "production", "2", "--registry", r).exit_code == 0
    rows = json.loads(cli("config", "list", "--json", "--registry", r).stdout)
    assert [(x["version"], x["environments"], x["pushed_by"]) for x in rows] == [
        (3, [], PRINCIPAL), (2, ["production"], PRINCIPAL), (1, [], PRINCIPAL),
    ]  # fmt: skip
    shown = yaml.safe_load(cli("config", "show", "2", "--registry", r).stdout)
    assert shown["version"] == 2 and shown["temperature"] == 0.2 and shown["features"] == {"fast_path": True}
    diff = cli("config", "diff", "1", "3", "--registry", r).stdout
    assert "-temperature: 0\n+temperature: 0.4" in diff and "-description: temperature 0" in diff
    missing = cli("config", "show", "9", "--registry", r)
    assert missing.exit_code == 2 and "no version 9 (versions: 1, 2, 3)" in missing.output


def test_the_registry_comes_from_the_environment_variable(registry: Path, monkeypatch: object) -> None:
    from typer.testing import CliRunner

    from runner.cli import app

    result = CliRunner().invoke(app, ["config", "list"], env={"RUNNER_CONFIG_REGISTRY": str(registry)})
    assert result.exit_code == 0 and "gpt-4o-mini" in result.output
    bare = CliRunner().invoke(app, ["config", "list"], env={"RUNNER_CONFIG_REGISTRY": ""})
    assert bare.exit_code == 2 and "--registry DIR or set RUNNER_CONFIG_REGISTRY" in bare.output


def test_a_bad_file_is_refused_naming_the_field_and_nothing_is_committed(
    registry: Path, tmp_path: Path
) -> None:
    before = git(registry, "rev-parse", "HEAD")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: gpt-4o\nseed: 7\ntemperature: 5\ntop_p: 1\n")
    result = cli("config", "push", str(bad), "--registry", str(registry))
    assert result.exit_code == 2
    assert f"{bad}: temperature: 5 is greater than the maximum of 2" in result.output
    extra = tmp_path / "extra.yaml"
    extra.write_text("model: gpt-4o\nseed: 7\ntemperature: 0\ntop_p: 1\ntemprature: 1\n")
    result = cli("config", "push", str(extra), "--registry", str(registry))
    assert result.exit_code == 2 and "unknown field 'temprature'" in result.output
    assert git(registry, "rev-parse", "HEAD") == before
    assert sorted(p.name for p in (registry / "versions").iterdir()) == [
        "0001.yaml",
        "0002.yaml",
        "0003.yaml",
    ]


def test_init_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    result = cli("config", "init", str(tmp_path / "busy"))
    assert result.exit_code == 2 and "is not an empty folder" in result.output
    result = cli("config", "list", "--registry", str(tmp_path / "busy"))
    assert result.exit_code == 2 and "not a configuration registry" in result.output
