"""A registry edited by hand into an invalid state is refused naming the file and the field; two concurrent
promotions leave a consistent registry (one wins, the other gets a clear error); a held lock is respected."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runner.config import deploy, open_registry, promote
from runner.config import registry as reg
from runner.config.gate import GateReport
from runner.errors import ConfigError
from tests.config.conftest import cli, git


def _commit_by_hand(root: Path, path: str, text: str) -> None:
    (root / path).write_text(text)
    git(root, "add", path)
    git(root, "-c", "user.name=mallory", "-c", "user.email=m@x", "commit", "-qm", "hand edit")


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        (
            "versions/0002.yaml",
            "model: gpt-4o-mini\nseed: 7\ntemperature: hot\ntop_p: 1\nversion: 2\n",
            "versions/0002.yaml: temperature: expected number, got 'hot'",
        ),
        (
            "versions/0003.yaml",
            "model: gpt-4o-mini\nseed: 7\ntemperature: 0\ntop_p: 1\nversion: 4\n",
            "versions/0003.yaml: version: expected 3 (the file's number), got 4",
        ),
        (
            "environments/production.yaml",
            "environment: production\nversion: 9\nlive: [{version: 9, gate: passed}]\n",
            "environments/production.yaml: version: 9 is not in the registry",
        ),
        (
            "environments/production.yaml",
            "environment: production\nversion: 1\nlive: [{version: 1, gate: maybe}]\n",
            "environments/production.yaml: live[0].gate: 'maybe' is not one of",
        ),
        (
            "registry.yaml",
            "format: 1\ngate: {tasks: [a.yaml]}\n",
            "registry.yaml: gate: expected the field 'packs'",
        ),
        (
            "versions/0001.yaml",
            "model: gpt-4o\nseed: 7\ntemperature: 0\ntop_p: 1\nversion: 1\n",
            "versions/0001.yaml: changed after it was pushed; versions are immutable",
        ),
    ],
)
def test_a_hand_broken_registry_is_refused_naming_file_and_field(
    registry: Path, path: str, text: str, message: str
) -> None:
    (registry / "environments").mkdir(exist_ok=True)
    _commit_by_hand(registry, path, text)
    head = git(registry, "rev-parse", "HEAD")
    for args in (["config", "list"], ["config", "promote", "production", "1"], ["rollback", "production"]):
        result = cli(*args, "--registry", str(registry))
        assert result.exit_code == 2, result.output
        assert f"error: {registry / message.split(':')[0]}{message[message.index(':') :]}" in result.output
        assert "Traceback" not in result.output
    assert git(registry, "rev-parse", "HEAD") == head


def test_an_uncommitted_hand_edit_is_refused(registry: Path) -> None:
    (registry / "versions/0004.yaml").write_text("model: m\nseed: 1\ntemperature: 0\ntop_p: 1\nversion: 4\n")
    result = cli("config", "promote", "production", "4", "--registry", str(registry))
    assert result.exit_code == 2
    assert f"{registry / 'versions/0004.yaml'}: changed by hand and not committed" in result.output


def test_two_concurrent_promotions_one_wins_the_other_gets_a_clear_error(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both promotions read the registry and run their gate before either commits: the barrier holds
    # each in its gate until the other has read the same head.
    barrier = threading.Barrier(2, timeout=60)

    def slow_gate(root: Path, gate: object, version: int, replayer: object = None) -> GateReport:
        barrier.wait()
        return GateReport(version, configured=False, checks=())

    monkeypatch.setattr(deploy, "run_gate", slow_gate)
    monkeypatch.setenv("RUNNER_PRINCIPAL", "racer")
    outcomes: dict[int, object] = {}

    def go(version: int) -> None:
        try:
            outcomes[version] = promote(registry, "production", version, reason=f"race {version}")
        except ConfigError as e:
            outcomes[version] = e

    threads = [threading.Thread(target=go, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes.values() if isinstance(o, ConfigError)]
    wins = [o for o in outcomes.values() if isinstance(o, deploy.Move)]
    assert len(errors) == 1 and len(wins) == 1, outcomes
    assert any(s in str(errors[0]) for s in ("another change", "changed while this change was prepared"))
    winner = wins[0]
    after = open_registry(registry)  # consistent: validates, clean tree, pointer at the winner
    assert after.environment("production").version == winner.version
    assert after.head == winner.commit
    assert git(registry, "log", "--format=%s", "-1") == f"promote production: - -> {winner.version}\n"
    assert git(registry, "status", "--porcelain") == ""
    assert not (registry / ".git" / reg.LOCK).exists()


def test_a_held_lock_refuses_a_change_clearly(registry: Path) -> None:
    head = git(registry, "rev-parse", "HEAD")
    with reg.locked(registry):
        result = cli("config", "promote", "production", "1", "--registry", str(registry))
    assert result.exit_code == 2
    assert "another change to the registry is in progress (pid" in result.output
    assert git(registry, "rev-parse", "HEAD") == head
    assert cli("config", "promote", "production", "1", "--registry", str(registry)).exit_code == 0
