"""`runner replay` end to end, in Docker: the example packs, tampered packs, timeouts, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from packs.build import build
from runner.engine.containers import SPARE_ROLES, owned
from runner.pack import manifest as mf
from runner.replay import spare
from tests.gitrepo import make_repo
from tests.packfactory import command, make_pack, patch, repack

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example_packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("packs")
    return {name: build(ROOT / "packs" / "src" / name, out) for name in ("demo-fix", "demo-diverge")}


def ours(docker_client: Any, folder: Path) -> list[str]:
    """Names of the runner's containers from runs under `folder` (others may share the engine): those
    labelled with the run, the sidecars their workloads joined, and any spare sidecar or workload that was
    claimed (a spare carries no run label) and is still there; spares waiting for the next replay are not
    leaks."""
    prefix = str(folder.resolve())
    everything = owned(docker_client)
    mine = [c for c in everything if c.labels.get("runner.run", "").startswith(prefix)]
    joined = {str(c.attrs["HostConfig"]["NetworkMode"]).removeprefix("container:") for c in mine}
    waiting = {  # made (staging) or waiting (ready) for the next replay
        json.loads((f / "spare.json").read_text()).get(key)
        for state in ("staging", "ready")
        for f in (spare.root() / state).glob("*")
        if (f / "spare.json").is_file()
        for key in ("id", "workload")
    }
    claimed = [
        c for c in everything
        if c.labels.get("runner.role") in SPARE_ROLES and (c.id in joined or c.id not in waiting)
    ]  # fmt: skip
    return [c.name for c in mine] + [c.name for c in claimed if c not in mine]


@pytest.fixture()
def no_leaks(docker_client: Any, tmp_path: Path) -> Iterator[None]:
    yield
    assert_no_leaks(docker_client, tmp_path)


def assert_no_leaks(docker_client: Any, folder: Path) -> None:
    """No container of the runs under `folder` is left, within 30 s: a replay hands its claimed spare to a
    detached process, which kills it, and the engine removes it as it exits."""
    left = ours(docker_client, folder)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = ours(docker_client, folder)
    assert not left, f"containers left behind: {left}"


def runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`runner ARGS` in a subprocess, as a user runs it (no stdin, a wide terminal for readable tables)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=full, capture_output=True, text=True,
        timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_example_pack_reproduces(
    example_packs: dict[str, Path], own_images: Any, tmp_path: Path, no_leaks: None
) -> None:
    proc = runner("replay", str(example_packs["demo-fix"]), "--json", "report.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "report.json").read_text())
    pack = doc["packs"][0]
    assert pack["verdict"] == "reproduced"
    assert [s["step_id"] for s in pack["steps"]] == ["run-tests", "ask-model", "fix-median", "rerun-tests"]
    assert pack["cassettes"] == {"served": 1, "misses": [], "unused": 0}
    run_dir = Path(pack["run_dir"])
    assert not run_dir.is_absolute() and (tmp_path / run_dir / "report.json").is_file()
    assert (tmp_path / run_dir / "outputs" / "rerun-tests" / "junit.xml").is_file()
    assert "2 passed" in (tmp_path / run_dir / "steps" / "rerun-tests.stdout").read_text()


def test_diverging_pack_names_the_step(
    example_packs: dict[str, Path], own_images: Any, tmp_path: Path, no_leaks: None
) -> None:
    proc = runner(
        "replay", str(example_packs["demo-diverge"]), "--json", "-", "--junit", "junit.xml", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    pack = json.loads(proc.stdout)["packs"][0]
    assert (pack["verdict"], pack["first_divergence"]) == ("diverged", "rerun-tests")
    diffs = {d["subject"]: d for d in pack["steps"][-1]["differences"]}
    assert diffs["exit code"]["summary"] == "exit code 1, recorded 0"
    assert "+FAILED tests/test_stats.py::test_median_even - assert 2 == 2.5" in diffs["stdout"]["diff"]
    assert "rerun-tests" in (tmp_path / "junit.xml").read_text()


def _edit_member(name: str, change: Any) -> Any:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, change(d) if n == name else d) for n, d in members]

    return edit


@pytest.mark.parametrize(
    ("member", "change", "message"),
    [
        ("patches/0003.diff", lambda d: d.replace(b"/ 2", b"/ 3"), "patches/0003.diff"),
        ("cassettes/http.jsonl", lambda d: d.replace(b"stats.median", b"stats.mode"), "cassettes/http.jsonl"),
        ("manifest.yaml", lambda d: d.replace(b"python: 3.11.2", b"python: 3.11.9"), "root digest"),
    ],
)
def test_tampered_pack_is_refused(
    example_packs: dict[str, Path],
    own_images: Any,
    tmp_path: Path,
    member: str,
    change: Any,
    message: str,
    no_leaks: None,
) -> None:
    tampered = repack(example_packs["demo-fix"], tmp_path / "tampered.tar.zst", _edit_member(member, change))
    proc = runner("replay", str(tampered), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr


def _image_pack(tmp_path: Path, reference: str, image_id: str | None, steps: list[Any]) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"hello.txt": "hello from the workspace\n"})
    env = mf.Environment(kind="image", image=mf.ImageRef(reference=reference, id=image_id))
    return make_pack(tmp_path, repo=repo, steps=steps, environment=env)


def test_image_by_id_and_mismatch(
    own_images: Any, docker_client: Any, tmp_path: Path, no_leaks: None
) -> None:
    base = docker_client.images.get(own_images.base.tag)
    fake_digest = "runner-base@sha256:" + "ab" * 32
    good = _image_pack(
        tmp_path / "a",
        fake_digest,
        base.id,
        [command("c1", ["cat", "hello.txt"], stdout=b"hello from the workspace\n")],
    )
    proc = runner("replay", str(good), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    missing = _image_pack(tmp_path / "b", "127.0.0.1:9/nowhere@sha256:" + "cd" * 32, None, [])
    proc = runner("replay", str(missing), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot be pulled" in proc.stdout


def test_timeout_kills_the_command(own_images: Any, tmp_path: Path, no_leaks: None) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    pack = make_pack(
        tmp_path, repo=repo, files={"env/pip-freeze.txt": b""},
        steps=[command("slow", ["sh", "-c", "sleep 60 & sleep 60"], timeout=1)],
    )  # fmt: skip
    started = time.monotonic()
    proc = runner("replay", str(pack), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 50
    pack_out = json.loads(proc.stdout)["packs"][0]
    assert pack_out["cause"] == "timeout"
    assert "killed after its timeout of 1s" in pack_out["steps"][0]["summary"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_leaves_nothing_behind(
    own_images: Any, docker_client: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    pack = make_pack(
        tmp_path, repo=repo, files={"env/pip-freeze.txt": b""},
        steps=[command("slow", ["sleep", "120"], timeout=300)],
    )  # fmt: skip
    private_tmp = tmp_path / "tmp"  # /tmp is shared with other replays
    private_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(private_tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "replay", str(pack)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any("workload" in name for name in ours(docker_client, tmp_path)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert_no_leaks(docker_client, tmp_path)
    assert not list(private_tmp.glob("runner-*"))


def _agent_pack(tmp_path: Path, agent_writes: str) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"notes.txt": "one\n"})
    recorded = (
        "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1,2 @@\n one\n+two\n"
    )
    script = f"import pathlib; pathlib.Path('notes.txt').write_text({agent_writes!r})"
    agent = mf.Agent(
        name="scripted-agent",
        command=mf.AgentCommand(argv=("python3", "-c", script), timeout=60),
        patch="agent",
    )
    return make_pack(
        tmp_path, repo=repo, agent=agent, files={"env/pip-freeze.txt": b""},
        steps=[patch("agent", recorded), command("check", ["cat", "notes.txt"], stdout=b"one\ntwo\n")],
    )  # fmt: skip


def test_rerun_agent_reproduces_its_patch(own_images: Any, tmp_path: Path, no_leaks: None) -> None:
    good = _agent_pack(tmp_path / "good", "one\ntwo\n")
    proc = runner("replay", str(good), "--rerun-agent", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "re-run agent reproduced the patch" in json.loads(proc.stdout)["packs"][0]["steps"][0]["summary"]

    bad = _agent_pack(tmp_path / "bad", "one\nthree\n")
    proc = runner("replay", str(bad), "--rerun-agent", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pack = json.loads(proc.stdout)["packs"][0]
    assert pack["first_divergence"] == "agent"
    diff = pack["steps"][0]["differences"][0]["diff"]
    assert "-two" in diff and "+three" in diff
    # Without the flag the recorded patch is applied, and the pack reproduces.
    assert runner("replay", str(bad), cwd=tmp_path).returncode == 0


def test_rerun_agent_needs_a_recorded_command(example_packs: dict[str, Path], tmp_path: Path) -> None:
    proc = runner("replay", str(example_packs["demo-fix"]), "--rerun-agent", cwd=tmp_path)
    assert proc.returncode == 2
    assert "records no agent command" in proc.stdout


def test_bad_input_is_exit_2_with_one_line(own_images: Any, tmp_path: Path) -> None:
    missing = runner("replay", "nowhere.tar.zst", cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere.tar.zst: no such pack or folder" in missing.stderr
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"this is not a pack at all\n" * 10)
    proc = runner("replay", str(junk), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["packs"][0]["error"]
    assert "junk.tar.zst" in error and "\n" not in error and "Traceback" not in proc.stderr


def test_several_packs_in_parallel(example_packs: dict[str, Path], own_images: Any, tmp_path: Path) -> None:
    folder = tmp_path / "golden"
    folder.mkdir()
    for path in example_packs.values():
        (folder / path.name).write_bytes(path.read_bytes())
    proc = runner("replay", str(folder), "--jobs", "2", "--markdown", "r.md", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"] == {"reproduced": 1, "diverged": 1, "error": 0}
    assert [p["pack"] for p in doc["packs"]] == ["demo-diverge.tar.zst", "demo-fix.tar.zst"]
    assert "| `demo-diverge.tar.zst` | diverged |" in (tmp_path / "r.md").read_text()
    only_first = runner("replay", str(folder), "--shard", "2/2", "--json", "-", cwd=tmp_path)
    assert only_first.returncode == 0 and len(json.loads(only_first.stdout)["packs"]) == 1
