"""The golden gate in front of promote and rollback: packs recorded under the target version, their
expectations checked; a failure refuses the move with the report; --force --reason goes through and is
recorded; rollback skips versions that went live by force."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.config.conftest import BROKEN, cli, gate, git, golden_pack


def _env(root: Path) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((root / "environments/production.yaml").read_text())
    return loaded


def test_a_failing_golden_set_blocks_promotion_and_force_records_the_override(registry: Path) -> None:
    r = str(registry)
    gate(registry)
    golden_pack(registry, 1)
    golden_pack(registry, 2, diff=BROKEN)  # version 2 breaks the golden task
    golden_pack(registry, 3, recorded_as="2")  # a pack of another version does not vouch for 3

    ok = cli("config", "promote", "production", "1", "--registry", r)
    assert ok.exit_code == 0, ok.output
    assert "gate for version 1: 1 of 1 golden task(s) held" in ok.output

    head = git(registry, "rev-parse", "HEAD")
    refused = cli("config", "promote", "production", "2", "--registry", r)
    assert refused.exit_code == 1
    assert "gate for version 2: 0 of 1 golden task(s) held" in refused.output
    assert "FAILED patch_contains" in refused.output
    assert "promote of production to version 2 refused: the golden gate failed" in refused.output
    assert git(registry, "rev-parse", "HEAD") == head and _env(registry)["version"] == 1

    other = cli("config", "promote", "production", "3", "--registry", r)
    assert other.exit_code == 1 and "recorded under config version 2, not 3" in other.output
    reasonless = cli("config", "promote", "production", "2", "--force", "--registry", r)
    assert reasonless.exit_code == 2 and "--force needs --reason" in reasonless.output
    assert git(registry, "rev-parse", "HEAD") == head

    forced = cli(
        "config", "promote", "production", "2", "--force", "--reason", "hotfix for INC-7", "--registry", r
    )
    assert forced.exit_code == 0, forced.output
    assert "(gate overridden with --force)" in forced.output
    body = git(registry, "log", "-1", "--format=%B")
    assert "Runner-Gate: forced" in body and "Runner-Override: hotfix for INC-7" in body
    assert "FAILED patch_contains" in body  # the report that was overridden is in the audit log
    assert _env(registry)["live"] == [{"version": 1, "gate": "passed"}, {"version": 2, "gate": "forced"}]
    history = cli("config", "history", "--registry", r).output
    assert "gate overridden: hotfix for INC-7" in history

    back = cli("rollback", "production", "--registry", r, "-m", "undo the hotfix")
    assert back.exit_code == 0, back.output
    assert "production: 2 -> version 1" in back.output and "1 of 1 golden task(s) held" in back.output


def test_rollback_skips_forced_versions_and_is_gated_too(registry: Path) -> None:
    r = str(registry)
    gate(registry)
    golden_pack(registry, 1)
    golden_pack(registry, 3)
    assert cli("config", "promote", "production", "1", "--registry", r).exit_code == 0
    assert (
        cli("config", "promote", "production", "2", "--force", "-m", "no pack yet", "--registry", r).exit_code
        == 0
    )
    assert cli("config", "promote", "production", "3", "--registry", r).exit_code == 0
    to_forced = cli("rollback", "production", "--to", "2", "--registry", r)
    assert to_forced.exit_code == 2 and "went live here by --force" in to_forced.output
    # The previous known-good of 3 is 1: 2 went live by force.
    back = cli("rollback", "production", "--registry", r)
    assert back.exit_code == 0 and "production: 3 -> version 1" in back.output
    assert cli("config", "promote", "production", "3", "--registry", r).exit_code == 0

    # A known-good version whose golden pack has gone bad since is not rolled back to blindly.
    (registry / "golden/v1/fix-add.tar.zst").unlink()
    refused = cli("rollback", "production", "--registry", r)
    assert refused.exit_code == 1 and "no golden pack for version 1" in refused.output
    assert _env(registry)["version"] == 3


def test_a_gate_reaching_outside_the_registry_fails(registry: Path, tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text("name: x\n")
    (registry / "registry.yaml").write_text("format: 1\ngate: {tasks: [../task.yaml], packs: [p.tar.zst]}\n")
    git(registry, "-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qam", "gate outside")
    result = cli("config", "promote", "production", "1", "--registry", str(registry))
    assert result.exit_code == 1 and "../task.yaml: outside the registry" in result.output
