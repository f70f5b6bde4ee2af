"""What the command line imports before it runs a command: `runner --help` and every command's start must
not pay for the Docker SDK, mitmproxy, hyperscan, cryptography, OpenTelemetry, jsonschema or GitPython;
each command imports its stage inside its own function. Checked on `sys.modules` in a fresh interpreter,
never on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cassettes.importers import MAX_IMPORT_BYTES
from runner.cli import cassette
from runner.recorder import spareca
from tests.gitrepo import make_repo

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "mitmproxy", "hyperscan", "cryptography", "opentelemetry", "jsonschema", "git")


def _modules_after(code: str, cwd: Path = REPO) -> set[str]:
    """The names in `sys.modules` after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def _heavy_after(code: str) -> list[str]:
    """The heavy top-level packages in `sys.modules` after running `code` in a fresh interpreter."""
    return sorted({m.split(".")[0] for m in _modules_after(code)} & set(HEAVY))


def test_importing_the_command_line_pulls_in_no_heavy_library() -> None:
    assert _heavy_after("import runner.cli") == []


def test_every_commands_help_pulls_in_no_heavy_library() -> None:
    """`--version`, then `--help` of the app and of every group and command, walked from the app itself."""
    code = """
import typer
from typer.core import TyperGroup
from runner.cli import app

def paths(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, TyperGroup):
            yield from paths(command, (*path, name))

root = typer.main.get_command(app)
helps = [["--version"], ["--help"], *([*p, "--help"] for p in paths(root))]
assert len(helps) > 25, helps  # the walk found the command tree
for argv in helps:
    try:
        app(argv, prog_name="runner")
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
"""
    assert _heavy_after(code) == []


def test_runner_record_imports_its_own_group_alone_before_the_agent(tmp_path: Path) -> None:
    """`runner record` up to the agent's spawn (here refused: no such program): no other command group,
    no heavy library, no YAML (the recorder reads none before the agent runs)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code = f"""
import sys
from runner.cli import main
sys.argv = ["runner", "record", "--no-http", "--out", {str(tmp_path / "s.tar.zst")!r}, "--", "/nonexistent/agent"]
try:
    main()
except SystemExit as e:
    assert e.code == 2, e.code  # BAD_INPUT: the agent cannot start
"""
    found = _modules_after(code, cwd=tmp_path)
    assert {m.split(".")[0] for m in found} & {*HEAVY, "yaml"} == set()
    assert {m for m in found if m.startswith("runner.cli.")} == {"runner.cli.common", "runner.cli.record"}
    assert "runner.progress" not in found  # Rich's live display: only commands that show progress
    assert "runner.recorder.baseline" in found  # the probe ran up to the spawn


# What `runner record` imports once the agent runs, never before it is spawned.
AFTER_THE_SPAWN = ("runner.privacy.mask", "runner.pack", "runner.recorder.session", "hyperscan", "yaml")


def test_runner_record_with_its_proxy_leaves_the_pack_and_masking_to_after_the_spawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runner record` with the recording proxy (and a keyring, whose redaction key the proxy takes), up to
    the agent's spawn: the privacy settings are checked without the masking module (the pack's schema, the
    scanner), the agent's command is planned once it runs, and the proxy's CA made ahead is taken without
    cryptography."""
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RUNNER_SPARE_CA", raising=False)
    spareca.make_spare()
    spare = tmp_path / "home" / "spare-ca" / "ready" / "mitmproxy-ca.pem"
    made = spare.read_bytes()
    make_repo(tmp_path, {"a.py": "x = 1\n"})
    ring = tmp_path / "ring.json"
    subprocess.run(
        [sys.executable, "-m", "runner", "keys", "new", "--tenant", "t", "--out", str(ring)],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    code = f"""
import json, os, sys
from runner.cli import main
from runner.recorder import wrap

class Spawned(BaseException):
    pass

def spawn(self, *args, **kwargs):
    raise Spawned(sorted(sys.modules))

wrap._Agent.__init__ = spawn
os.environ["RUNNER_KEYRING"] = {str(ring)!r}
sys.argv = ["runner", "record", "--out", {str(tmp_path / "s.tar.zst")!r}, "--", "true"]
try:
    main()
except Spawned as e:  # the proxy is stopped by now
    print(json.dumps(e.args[0]), flush=True)
    os._exit(0)
"""
    found = _modules_after(code, cwd=tmp_path)
    assert "runner.cassettes.process" in found  # the probe ran up to the spawn, the proxy started
    assert sorted(m for m in found if m.startswith(AFTER_THE_SPAWN)) == []
    assert spare.read_bytes() != made  # claimed, and the next made by the proxy's stop
    assert sorted(m for m in found if m.startswith("cryptography")) == []
    assert "runner.privacy.policy" in found and "proxy.redact" not in found  # its name, not its detectors


def test_the_proxy_process_module_leaves_reports_and_privacy_to_their_use() -> None:
    """The recording proxy starts before the agent: its module imports the report reader, the originals
    and the privacy settings only where they are used."""
    found = _modules_after("import runner.cassettes.process")
    assert found & {"proxy.report", "proxy.match", "proxy.originals", "runner.privacy.mask"} == set()


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a stage module that needs the Docker SDK is seen."""
    assert "docker" in _heavy_after("import runner.engine.images")


def test_the_cassette_size_default_is_the_importers_cap() -> None:
    assert cassette.MAX_IMPORT_MIB * 2**20 == MAX_IMPORT_BYTES


# What a pack build needs only for some packs: keys (sealing, signing), cassettes; the reader for resign.
ONLY_WHEN_USED = (
    "runner.privacy.crypto",
    "runner.privacy.sealedmanifest",
    "runner.privacy.sign",
    "runner.pack.read",
    "proxy.cassette",
    "cryptography",
)


def test_a_pack_built_without_keys_or_cassettes_imports_neither_and_unpacking_it_no_privacy(
    tmp_path: Path,
) -> None:
    """A build with the default redaction and no keyring imports the scanner, not the keys, signing or
    cassette modules; unpacking a pack without encrypted payloads imports none of the privacy pass."""
    pack = tmp_path / "p.tar.zst"
    build = f"""
from pathlib import Path
from runner.pack.build import PackBuilder
from tests.packfactory import make_manifest
with PackBuilder() as b:
    b.add_bytes("env/pip-freeze.txt", b"x==1\\n")
    b.add_bytes("workspace/base.bundle", b"bundle")
    b.build(make_manifest(), Path({str(pack)!r}))
"""
    found = _modules_after(build)
    assert "hyperscan" in found  # the probe built with redaction on
    assert sorted(m for m in found if m.startswith(ONLY_WHEN_USED)) == []
    found = _modules_after(
        f"from pathlib import Path\nfrom runner.pack.read import unpack\nunpack(Path({str(pack)!r}), Path({str(tmp_path / 'out')!r}))"
    )
    assert (tmp_path / "out" / "manifest.yaml").is_file()  # the probe unpacked it
    assert sorted(m for m in found if m.startswith(("runner.privacy", "hyperscan", "proxy"))) == []
