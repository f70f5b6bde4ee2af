"""Fuzzing `runner cassette import` through the CLI: hostile vcrpy YAML and HAR files.

Each example starts from a valid recording and mutates it: a value replaced by an odd one (wrong type,
huge or non-finite number, control characters, lone surrogate), a key removed, deep nesting, a YAML
alias or tag spliced in, or the text cut short. Whatever comes in, the command ends with exit 0 and a
cassette the proxy reads back, or exit 2 with exactly one error line, no traceback and nothing written.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import typer
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.cassette import read_exchanges
from runner.cli import app
from runner.errors import ExitCode

COMMAND = typer.main.get_command(app)  # built once: typer's CliRunner rebuilds it per call (0.13 s)
SPLICE = "@@SPLICE@@"  # a placeholder value, replaced in the serialised text by raw YAML or JSON

VCRPY: dict[str, Any] = {
    "version": 1,
    "interactions": [
        {
            "request": {
                "method": "POST",
                "uri": "https://api.example.com/v1/chat?x=1",
                "body": '{"model": "m"}',
                "headers": {
                    "Authorization": ["Bearer sk-proj-" + "Q7" * 12],
                    "Content-Type": ["application/json"],
                },
            },
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {"Content-Type": ["application/json"]},
                "body": {"string": '{"ok": true}'},
            },
        },
        {
            "request": {"method": "GET", "uri": "http://cdn.example.com/blob", "body": None, "headers": {}},
            "response": {
                "status": {"code": 404, "message": "Not Found"},
                "headers": {},
                "body": {"string": ""},
            },
        },
    ],
}

HAR: dict[str, Any] = {
    "log": {
        "version": "1.2",
        "entries": [
            {
                "startedDateTime": "2024-05-01T10:00:00.000Z",
                "time": 120,
                "request": {
                    "method": "POST",
                    "url": "https://api.example.com/v1/chat?api_key=k",
                    "httpVersion": "HTTP/2",
                    "headers": [{"name": "authorization", "value": "Bearer x"}],
                    "postData": {"mimeType": "application/json", "text": "{}"},
                },
                "response": {
                    "status": 200,
                    "statusText": "OK",
                    "httpVersion": "HTTP/2",
                    "headers": [{"name": "content-type", "value": "application/json"}],
                    "content": {"encoding": "base64", "text": "eyJvayI6IHRydWV9"},
                },
            }
        ],
    }
}

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([-1, 0, 65536, 10**19, 10**400, 4.5, -0.0, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["\ud800", "GET /x HTTP/1.1\r\nHost: evil", "\x1b[31mred\x07", "[/x]", "ftp://h/", "http://"]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
SPLICES_YAML = [
    "&a [1, 2]",
    "*nowhere",
    "!!python/object/apply:os.system ['true']",
    "!!binary aGVsbG8=",
    "!!set {a: null}",
    "!!timestamp 2001-12-14",
    "!!omap [a: 1]",
    "!!float .nan",
    "!!int 0x10",
]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path from the root to a value inside `node` (dict keys and list indices)."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def parent_of(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def recordings(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text) of a mutated recording."""
    kind = draw(st.sampled_from(["yaml", "har"]))
    doc = copy.deepcopy(VCRPY if kind == "yaml" else HAR)
    splice = ""
    for _ in range(draw(st.integers(1, 3))):
        targets = paths(doc)
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent, key = parent_of(doc, path), path[-1]
        op = draw(st.sampled_from(["odd", "odd", "delete", "deep", "share", "splice"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[key]
        elif op == "deep":
            depth = draw(st.sampled_from([50, 900, 3_000]))
            parent[key], splice = SPLICE, "[" * depth + "]" * depth
        elif op == "share" and kind == "yaml":
            # The same object twice: the dumper writes an anchor and an alias. Never an ancestor (a cycle).
            other = draw(st.sampled_from(targets))
            if other[: len(path)] != path and path[: len(other)] != other:
                parent[key] = parent_of(doc, other)[other[-1]]
        elif op == "splice" and kind == "yaml":
            parent[key], splice = SPLICE, draw(st.sampled_from(SPLICES_YAML))
        else:
            parent[key] = draw(ODD_VALUES)
    try:
        if kind == "yaml":
            text = yaml.safe_dump(doc, allow_unicode=True)
            text = text.replace(f"'{SPLICE}'", splice).replace(SPLICE, splice)
        else:
            text = json.dumps(doc).replace(f'"{SPLICE}"', splice)
    except (ValueError, yaml.YAMLError):  # a value the serialiser itself refuses (e.g. a lone surrogate)
        text = "{"
    cut = draw(st.none() | st.integers(0, len(text)))
    return ("recording.yaml" if kind == "yaml" else "recording.har"), text if cut is None else text[:cut]


def check(name: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        source.write_text(text, encoding="utf-8", errors="surrogatepass")
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        out = out_dir / "http.jsonl"
        result = CliRunner().invoke(COMMAND, ["cassette", "import", str(source), "--out", str(out)])
        assert result.exit_code in (ExitCode.OK, ExitCode.BAD_INPUT), (result.output, result.exception)
        assert "Traceback" not in result.output
        if result.exit_code == ExitCode.OK:
            assert [p.name for p in out_dir.iterdir()] == ["http.jsonl"]
            assert len(read_exchanges(out)) == json.loads(result.stdout)["imported"]
        else:
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error:"), result.output
            assert str(source) in lines[0] or str(out) in lines[0]
            assert list(out_dir.iterdir()) == []  # nothing half-written, no temporary file left


@given(recordings())
@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_mutated_recording_imports_or_is_refused_in_one_line(recording: tuple[str, str]) -> None:
    check(*recording)


@given(st.sampled_from(["recording.yaml", "recording.har"]), st.text(max_size=200))
@settings(max_examples=40, deadline=None, database=None)
def test_any_text_imports_or_is_refused_in_one_line(name: str, text: str) -> None:
    check(name, text)


def test_the_unmutated_recordings_import() -> None:
    """The fuzzer's seeds are valid: a refusal of a mutation is about the mutation."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("v.yaml", yaml.safe_dump(VCRPY)), ("h.har", json.dumps(HAR))):
            (Path(tmp) / name).write_text(text)
            result = CliRunner().invoke(
                COMMAND,
                ["cassette", "import", str(Path(tmp) / name), "--out", str(Path(tmp) / f"{name}.jsonl")],
            )
            assert result.exit_code == 0, result.output
