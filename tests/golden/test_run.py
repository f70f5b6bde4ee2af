"""`runner golden run` and `runner golden check` on real packs recorded from a real repository."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gitrepo import git
from tests.golden.conftest import runner


def test_golden_run_keeps_exactly_the_passing_pack_and_golden_check_agrees(
    golden_setup: tuple[Path, Path, dict[str, Path]], tmp_path: Path
) -> None:
    repo, agent, tasks = golden_setup
    out = tmp_path / "golden"
    files = [str(tasks[n]) for n in ("fix-add", "wrong-text", "tests-fail")]
    proc = runner(
        "golden", "run", *files, "--out", str(out), "--no-http", "--", "python", str(agent), cwd=repo
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 of 3 task(s) kept" in proc.stdout
    assert sorted(p.name for p in out.glob("*.tar.zst")) == ["fix-add.tar.zst"]
    assert sorted(p.name for p in (out / "failed").iterdir()) == [
        "tests-fail.json", "tests-fail.tar.zst", "wrong-text.json", "wrong-text.tar.zst",
    ]  # fmt: skip
    assert not list(out.glob(".*")), "no partial recording is left behind"
    wrong = json.loads((out / "failed" / "wrong-text.json").read_text())
    assert [e["name"] for e in wrong["expectations"] if not e["held"]] == ["patch_contains"]
    failing = json.loads((out / "failed" / "tests-fail.json").read_text())
    assert [e["name"] for e in failing["expectations"] if not e["held"]] == ["tests_pass"]
    assert "exited 1" in next(e["detail"] for e in failing["expectations"] if e["name"] == "tests_pass")
    # The caller's checkout is untouched: the agent worked in a clone.
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"

    kept = out / "fix-add.tar.zst"
    ok = runner("golden", "check", str(tasks["fix-add"]), str(kept), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name in (
        "patch_contains",
        "patch_not_contains",
        "tests_pass",
        "files_changed",
        "seed",
        "temperature",
    ):
        assert f"held   {name}:" in ok.stdout, ok.stdout
    assert "changed calc.py; expected calc.py" in ok.stdout  # the task file is in no patch

    for name, failed in (("wrong-text", "patch_contains"), ("tests-fail", "tests_pass")):
        proc = runner(
            "golden", "check", str(tasks[name]), str(out / "failed" / f"{name}.tar.zst"), cwd=tmp_path
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert [ln.split()[1] for ln in proc.stdout.splitlines() if ln.strip().startswith("FAILED")] == [
            f"{failed}:"
        ]
    # The same pack judged by another task's expectations: the check reads the pack, not the file name.
    cross = runner("golden", "check", str(tasks["wrong-text"]), str(kept), cwd=tmp_path)
    assert (
        cross.returncode == 1
        and "FAILED patch_contains: no added line contains 'operator.add'" in cross.stdout
    )


def test_a_second_run_replaces_a_set_aside_pack_by_the_kept_one(
    golden_setup: tuple[Path, Path, dict[str, Path]], tmp_path: Path
) -> None:
    repo, agent, tasks = golden_setup
    out = tmp_path / "golden"
    text = tasks["tests-fail"].read_text().replace("change add somehow", "fix add")
    first = runner("golden", "run", str(tasks["tests-fail"]), "--out", str(out), "--no-http", "--",
                   "python", str(agent), cwd=repo)  # fmt: skip
    assert first.returncode == 1 and (out / "failed" / "tests-fail.tar.zst").is_file()
    tasks["tests-fail"].write_text(text)
    second = runner("golden", "run", str(tasks["tests-fail"]), "--out", str(out), "--no-http", "--",
                    "python", str(agent), cwd=repo)  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert (out / "tests-fail.tar.zst").is_file()
    assert not list((out / "failed").iterdir())
