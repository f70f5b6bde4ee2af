"""Golden task files: the shipped schema, and one line naming the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.golden.task import load_task, schema
from tests.golden.conftest import TASKS, runner

GOOD = TASKS["fix-add"].lstrip()


@pytest.mark.parametrize(
    ("edit", "field", "expected"),
    [
        (
            ("max_model_calls: 0", "max_model_calls: three"),
            "expect.max_model_calls",
            "expected integer, got 'three'",
        ),
        (("seed: 1337\n", ""), "(top level)", "expected the field 'seed'"),
        (("tests_pass: true", "test_pass: true"), "expect", "unknown field 'test_pass'; expected one of"),
        (("temperature: 0", "temperature: 9"), "temperature", "9 is greater than the maximum of 2"),
        (
            ("patch_contains: a + b", "patch_contains: []"),
            "expect.patch_contains",
            "expected at least 1 item(s), got []",
        ),
        (("name: fix-add", "name: ../up"), "name", "expected letters, digits"),
        (("  prompt:", "  files: {'../escape.py': x}\n  prompt:"), "input.files", "inside the workspace"),
    ],
)
def test_a_bad_task_file_is_one_line_naming_file_field_and_expectation(
    tmp_path: Path, edit: tuple[str, str], field: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    assert edit[0] in GOOD
    bad.write_text(GOOD.replace(edit[0], edit[1], 1))
    proc = runner("golden", "check", str(bad), str(tmp_path / "unused.tar.zst"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {bad}: {field}: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_yaml_aliases_and_non_mappings_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x]\nb: [*a, *a]\n")
    with pytest.raises(Exception, match="aliases are not allowed"):
        load_task(bomb)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(Exception, match=r"list.yaml: \(top level\): expected a mapping"):
        load_task(listed)


def test_golden_run_validates_every_task_before_recording_any(
    golden_setup: tuple[Path, Path, dict[str, Path]], tmp_path: Path
) -> None:
    repo, agent, tasks = golden_setup
    tasks["tests-fail"].write_text(tasks["tests-fail"].read_text().replace("seed: 1337", "seed: -1"))
    out = tmp_path / "golden"
    proc = runner("golden", "run", str(tasks["fix-add"]), str(tasks["tests-fail"]), "--out", str(out), "--",
                  "python", str(agent), cwd=repo)  # fmt: skip
    assert proc.returncode == 2 and "tests-fail.yaml: seed: -1 is less than the minimum of 0" in proc.stderr
    assert not out.exists()


def test_the_schema_ships_in_the_package_and_lists_every_expectation() -> None:
    props = schema()["properties"]["expect"]["properties"]
    assert {"patch_contains", "patch_not_contains", "tests_pass", "files_changed", "max_model_calls",
            "max_duration_s"} <= set(props)  # fmt: skip
    assert (
        load_task(Path(__file__).parents[2] / "docs" / "golden-example.yaml").name == "fix-flaky-serializer"
    )
