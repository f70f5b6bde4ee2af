"""The agent's argv for the replay image and its own files: interpreter paths, console scripts, scripts
outside (and inside) the repository, `#!` scripts, size limits and `--capture-file` paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.recorder.agentcmd import MAX_FILE, plan, read_capture_files


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    repo, outside = tmp_path / "repo", tmp_path / "tools"
    (repo / "src").mkdir(parents=True)
    outside.mkdir()
    (repo / "src" / "inside.py").write_text("print('in')\n")
    (outside / "agent.py").write_text("print('agent')\n")
    return repo, outside


def test_a_script_outside_the_repository_is_stored_and_argv_names_its_absolute_path(
    layout: tuple[Path, Path],
) -> None:
    repo, outside = layout
    p = plan(
        ["/usr/bin/python3.11", "-u", "../tools/agent.py", "--fast"], cwd=repo, root=repo, console_scripts={}
    )
    assert p.argv == ("python", "-u", str(outside / "agent.py"), "--fast")
    assert p.argv_recorded == ("/usr/bin/python3.11", "-u", "../tools/agent.py", "--fast")
    (stored,) = p.files
    assert stored.file.path == str(outside / "agent.py") and stored.file.role == "script"
    assert stored.file.member == "agent/files/0001-agent.py" and stored.data == b"print('agent')\n"


def test_a_script_inside_the_repository_is_not_stored_and_an_absolute_path_becomes_relative(
    layout: tuple[Path, Path],
) -> None:
    repo, _ = layout
    p = plan(["python", str(repo / "src" / "inside.py")], cwd=repo, root=repo, console_scripts={})
    assert p.argv == ("python", "src/inside.py") and p.files == ()
    same = plan(["python", "src/inside.py"], cwd=repo, root=repo, console_scripts={})
    assert same.argv == ("python", "src/inside.py") and same.argv_recorded == ()


def test_modules_and_inline_code_store_nothing(layout: tuple[Path, Path]) -> None:
    repo, _ = layout
    for argv in (
        ["python", "-m", "agent.py"],
        ["python", "-c", "print(1)"],
        ["python3", "-X", "dev", "-m", "x"],
    ):
        p = plan(argv, cwd=repo, root=repo, console_scripts={})
        assert p.files == () and p.argv == tuple(argv)


def test_a_console_script_of_a_recorded_package_becomes_its_bare_name(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "mini").write_text("#!/home/u/.venv/bin/python\nfrom minisweagent import main\n")
    p = plan(
        [str(venv_bin / "mini"), "-t", "fix it"],
        cwd=repo,
        root=repo,
        console_scripts={"mini": "mini-swe-agent"},
    )
    assert p.argv == ("mini", "-t", "fix it") and p.console_script == "mini" and p.files == ()
    # Not a recorded package's script, but a Python script: stored, and started through `python`.
    other = plan([str(venv_bin / "mini")], cwd=repo, root=repo, console_scripts={})
    assert other.argv == ("python", str(venv_bin / "mini")) and other.files[0].file.role == "script"


def test_a_script_over_the_limit_is_left_out_with_a_warning(layout: tuple[Path, Path]) -> None:
    repo, outside = layout
    (outside / "huge.py").write_bytes(b"#" * (MAX_FILE + 1))
    p = plan(["python", str(outside / "huge.py")], cwd=repo, root=repo, console_scripts={})
    assert p.files == () and "over the" in p.warnings[0] and "huge.py" in p.warnings[0]


def test_capture_files_keep_home_paths_as_tilde_and_refuse_bad_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "agent").mkdir(parents=True)
    (home / ".config" / "agent" / "config.toml").write_text("mode = 'fast'\n")
    (tmp_path / "etc.yaml").write_text("a: 1\n")
    monkeypatch.setenv("HOME", str(home))
    files = read_capture_files(["~/.config/agent/config.toml", str(tmp_path / "etc.yaml")])
    assert files == [
        ("~/.config/agent/config.toml", b"mode = 'fast'\n"),
        (str(tmp_path / "etc.yaml"), b"a: 1\n"),
    ]
    p = plan(["true"], cwd=tmp_path, root=tmp_path, console_scripts={}, capture=files)
    assert [(f.file.path, f.file.member, f.file.role) for f in p.files] == [
        ("~/.config/agent/config.toml", "agent/files/0001-config.toml", "config"),
        (str(tmp_path / "etc.yaml"), "agent/files/0002-etc.yaml", "config"),
    ]
    with pytest.raises(UsageError, match="does not exist"):
        read_capture_files(["~/nope.toml"])
    with pytest.raises(UsageError, match="is a folder"):
        read_capture_files([str(home)])
    (tmp_path / "big.bin").write_bytes(b"\0" * (MAX_FILE + 1))
    with pytest.raises(UsageError, match="over the"):
        read_capture_files([str(tmp_path / "big.bin")])
