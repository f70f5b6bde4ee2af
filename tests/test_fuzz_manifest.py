"""Fuzz: hostile manifest.yaml texts packed into a pack never crash `runner inspect` or `runner verify`.

Each example starts from a valid manifest and either puts hostile text (escape sequences, Rich markup,
control characters) into fields that take free text, or replaces values anywhere with something hostile (huge
or odd numbers, control characters, deep nesting, odd types), or damages the dumped text itself (duplicate keys, YAML tags, aliases and merge keys, 5,000-digit integers, year-0
timestamps, deep brackets, stray bytes). When the result still reads as a manifest, its integrity root is
recomputed, so the hostile value reaches the renderers. Both commands must end in exit 0, or in exit 2 with
one `error:` line on stderr; never a traceback, never a raw control character on the terminal.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import PackError
from runner.pack import manifest as mf
from tests.packfactory import command, make_pack, patch, raw_members, write_pack

HOSTILE_TEXT = [
    "\x1b[2J\x1b[H",
    "\x1b]0;title\x07",
    "[/x]",
    "[link=https://evil.invalid]click[/link]",
    "[bold red]",
    "\u202eexe.txt",
    ":warning:",
    "a\nb\rc",
    "\x00",
    "\x9b31m",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(max_value=-(2**63) + 2, min_value=-(2**70)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x20), max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "x", "[/x]", "\x1b"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


TEXT_DAMAGE = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "agent: {name: twice}\n",
            "format_version: 1\n",
            "x: !!python/object/apply:os.system ['true']\n",
            "x: !!binary aGk=\n",
            "x: !!set {a}\n",
            "x: !custom 1\n",
            "x: &a [1, 2]\ny: *a\n",
            "x: {<<: {k: 1}}\n",
            "x: 0000-01-01T00:00:00Z\n",
            "x: 2025-02-30\n",
            "x: 1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18\n",
            "x: 0x" + "f" * 30 + "\n",
            "x: " + "9" * 5000 + "\n",
            "x: " + _deep(40) + "\n",
            "x: " + _deep(5000) + "\n",
            "x: " + "[" * 100_000 + "\n",
            "# a comment\n",
            "\t- odd: [\n",
            'x: "\\e[2J\\u202e"\n',
        ]
    ),
)


# Fields a valid manifest may fill with free text: hostile text there reaches the renderers.
FREE_TEXT = [
    ("agent", "name"),
    ("agent", "commit"),
    ("agent", "config_version"),
    ("inputs", "git", "branch"),
    ("inputs", "git", "remote"),
    ("llm", "model"),
    ("llm", "revision"),
    ("steps", 0, "reason"),
    ("steps", 1, "argv", 0),
    ("steps", 1, "argv", 1),
    ("steps", 1, "cwd"),
    ("artifacts", 0, "name"),
    ("environment", "snapshot", "os"),
    ("session", "created_at"),
]
free_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(min_size=1, max_size=30))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*path, i))
    return found


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[head] = _set(tree.get(head) if isinstance(tree, dict) else tree[head], rest, value)
    return copy


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    pack = make_pack(
        tmp_path_factory.mktemp("fuzz"),
        steps=[patch("p1", "--- a\n+++ b\n", reason="fix"), command("c1", ["pytest", "-q"], stdout=b"ok\n")],
    )
    members = raw_members(pack)
    manifest = mf.load(members[0][1])
    return mf.to_dict(replace(manifest, integrity=None)), members[1:]


def _with_integrity(text: bytes, members: list[tuple[str, bytes]], fallback: dict[str, Any]) -> bytes:
    """`text` plus an integrity section: recomputed when the text reads as a manifest, else the original."""
    digests = {name: mf.MemberDigest(hashlib.sha256(d).hexdigest(), len(d)) for name, d in members}
    try:
        root = mf.root_digest(mf.load(text), digests)
    except PackError:
        root = fallback["root"]
    integrity = {
        "algorithm": "sha256",
        "root": root,
        "members": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(digests.items())},
    }
    return text + yaml.safe_dump({"integrity": integrity}).encode()


def _check(args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code in (0, 2), (result.exit_code, result.exception, result.output[-2000:])
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\x00", "\r"):
        assert raw not in result.output, (raw, result.output[-2000:])


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    data=st.data(),
    mode=st.sampled_from(["free text", "any value", "damaged text"]),
    flow=st.booleans(),
    cut=st.integers(min_value=0, max_value=3),
)
def test_hostile_manifests_end_in_exit_0_or_one_line_and_exit_2(
    base: tuple[dict[str, Any], list[tuple[str, bytes]]],
    data: st.DataObject,
    mode: str,
    flow: bool,
    cut: int,
) -> None:
    tree, members = base
    damage = data.draw(TEXT_DAMAGE, label="damage") if mode == "damaged text" else ""
    for _ in range(cut + 1):
        if mode == "free text":
            path = data.draw(st.sampled_from(FREE_TEXT), label="path")
            tree = _set(tree, path, data.draw(free_text, label="text"))
        elif mode == "any value":
            path = data.draw(st.sampled_from(_paths(tree)), label="path")
            tree = _set(tree, path, data.draw(values, label="value"))
    if not isinstance(tree, dict):
        tree = {"format_version": 1, "x": tree}
    body = yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=False, sort_keys=False).encode()
    text = _with_integrity(body + damage.encode(), members, {"root": "0" * 64})
    with tempfile.TemporaryDirectory() as tmp:
        pack = write_pack(Path(tmp) / "fuzzed.tar.zst", [("manifest.yaml", text), *members])
        _check(["inspect", str(pack)])
        _check(["verify", str(pack)])
