"""Importing vcrpy cassettes (made by vcrpy itself) and HAR files, then replaying them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
import vcr
from typer.testing import CliRunner

from proxy.cassette import read_exchanges
from runner.cassettes.importers import import_recording
from runner.cassettes.process import ProxyProcess, ProxySettings
from runner.cli import app
from runner.errors import UsageError
from tests.helpers.https_server import BINARY, https_server

SECRET = "sk-proj-" + "Q7" * 12


def har(tmp_path: Path) -> Path:
    doc = {
        "log": {
            "version": "1.2",
            "entries": [
                {
                    "startedDateTime": "2024-05-01T10:00:00.000Z",
                    "time": 120,
                    "request": {
                        "method": "POST",
                        "url": "https://api.example.com/v1/chat/completions?api_key=" + SECRET,
                        "httpVersion": "HTTP/2",
                        "headers": [
                            {"name": ":authority", "value": "api.example.com"},
                            {"name": "authorization", "value": f"Bearer {SECRET}"},
                        ],
                        "postData": {
                            "mimeType": "application/json",
                            "text": '{"model": "m", "messages": []}',
                        },
                    },
                    "response": {
                        "status": 200,
                        "statusText": "OK",
                        "httpVersion": "HTTP/2",
                        "headers": [{"name": "content-type", "value": "application/json"}],
                        "content": {"mimeType": "application/json", "text": '{"ok": true}'},
                    },
                },
                {
                    "startedDateTime": "2024-05-01T10:00:01.000Z",
                    "time": 5,
                    "request": {"method": "GET", "url": "http://cdn.example.com/blob", "headers": []},
                    "response": {
                        "status": 200,
                        "headers": [],
                        "content": {"encoding": "base64", "text": base64.b64encode(BINARY).decode()},
                    },
                },
            ],
        }
    }
    path = tmp_path / "session.har"
    path.write_text(json.dumps(doc))
    return path


def test_har_import_keeps_fields_and_redacts_secrets(tmp_path: Path) -> None:
    out = tmp_path / "http.jsonl"
    assert import_recording(har(tmp_path), out, "ab" * 16) == 2
    assert SECRET not in out.read_text()
    post, blob = read_exchanges(out)
    assert (post.request.method, post.request.host, post.request.port) == ("POST", "api.example.com", 443)
    assert post.request.query[0][0] == "api_key" and post.request.query[0][1].startswith("REDACTED_")
    assert [h[0] for h in post.request.headers] == ["authorization"]
    assert json.loads(post.response.body) == {"ok": True}
    assert post.duration == pytest.approx(0.12)
    assert (blob.request.scheme, blob.request.port, blob.response.body) == ("http", 80, BINARY)


def test_import_refuses_to_overwrite_and_names_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "http.jsonl"
    out.write_text("")
    with pytest.raises(UsageError, match="already exists"):
        import_recording(har(tmp_path), out)
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(UsageError, match="not a valid vcrpy cassette"):
        import_recording(bad, tmp_path / "new.jsonl")
    assert not (tmp_path / "new.jsonl").exists()


def test_cli_import_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "c" / "http.jsonl"
    result = CliRunner().invoke(app, ["cassette", "import", str(har(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"imported": 2, "out": str(out)}
    again = CliRunner().invoke(app, ["cassette", "import", str(har(tmp_path)), "--out", str(out)])
    assert again.exit_code == 2


@pytest.mark.slow
def test_vcrpy_cassette_imports_and_replays_byte_identical(tmp_path: Path) -> None:
    source = tmp_path / "vcr.yaml"
    with (
        https_server(tmp_path) as server,
        vcr.use_cassette(str(source), record_mode="all"),
        requests.Session() as s,
    ):
        s.trust_env = False
        s.verify = str(server.ca.cert_path)
        recorded = [
            s.get(f"{server.base}/binary").content,
            s.get(f"{server.base}/gzip").content,
            s.post(
                f"{server.base}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "vcr"}]},
            ).content,
        ]
    out = tmp_path / "http.jsonl"
    assert import_recording(source, out, "cd" * 16) == 3
    settings = ProxySettings("replay", out, tmp_path / "replay", redact_key="cd" * 16)
    with ProxyProcess(settings) as proxy, requests.Session() as s:
        s.trust_env = False
        s.proxies = {"https": proxy.url}
        s.verify = str(proxy.ca.cert_path if proxy.ca else "")
        replayed = [
            s.get(f"{server.base}/binary").content,
            s.get(f"{server.base}/gzip").content,
            s.post(
                f"{server.base}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "vcr"}]},
            ).content,
        ]
    assert replayed == recorded
    assert proxy.report is not None and proxy.report.served == 3 and proxy.report.misses == ()


def cli_import(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cassette", "import", *[str(a) for a in args]])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in output, output
    return lines[0]


def test_import_never_writes_through_a_planted_temporary_name(tmp_path: Path) -> None:
    """The old importer wrote to the predictable `.NAME.importing`, following a symlink and appending."""
    out = tmp_path / "http.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / ".http.jsonl.importing").symlink_to(victim)
    code, output = cli_import(har(tmp_path), "--out", out)
    assert code == 0, output
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and len(read_exchanges(out)) == 2


def test_import_never_appends_to_what_a_planted_temporary_file_holds(tmp_path: Path) -> None:
    out = tmp_path / "http.jsonl"
    (tmp_path / ".http.jsonl.importing").write_text('{"planted": true}\n')
    code, output = cli_import(har(tmp_path), "--out", out)
    assert code == 0, output
    assert "planted" not in out.read_text() and len(read_exchanges(out)) == 2
    leftovers = {p.name for p in tmp_path.iterdir()} - {"http.jsonl", "session.har", ".http.jsonl.importing"}
    assert leftovers == set()  # no temporary file left behind


def test_import_refuses_an_existing_output_unless_forced_and_never_follows_it(tmp_path: Path) -> None:
    source = har(tmp_path)
    victim = tmp_path / "victim.jsonl"
    victim.write_text("precious\n")
    out = tmp_path / "http.jsonl"
    out.symlink_to(victim)
    code, output = cli_import(source, "--out", out)
    assert code == 2 and "--force" in one_error_line(output)
    code, output = cli_import(source, "--out", out, "--force")
    assert code == 0, output
    assert victim.read_text() == "precious\n"  # the link was replaced, its target untouched
    assert not out.is_symlink() and len(read_exchanges(out)) == 2


VCR_INTERACTION = """\
  request: {method: GET, uri: 'https://api.example.com/x', body: null, headers: {}}
  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ok}}
"""


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 7)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "\n".join(lines)
        + "\ninteractions:\n- request: {method: GET, uri: 'https://a.example/x', body: null, headers: {X: *l6}}\n"
        + "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ok}}\n"
    )
    assert bomb.stat().st_size < 1024
    out = tmp_path / "http.jsonl"
    code, output = cli_import(bomb, "--out", out)
    assert code == 2 and "aliases" in one_error_line(output) and str(bomb) in output
    assert not out.exists()
    shared = tmp_path / "shared.yaml"
    shared.write_text("interactions:\n- &i\n" + VCR_INTERACTION + "- *i\n")
    code, output = cli_import(shared, "--out", out)
    assert code == 2 and "*i" in one_error_line(output)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "interactions: " + "[" * 20_000 + "]" * 20_000),
        ("deep2.yaml", "interactions:\n- request: " + "{a: " * 5_000 + "1" + "}" * 5_000),
        ("deep.har", '{"log": {"entries": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        # Shallow enough for Python, but PyYAML's scanner is quadratic in flow depth (3,000 took 11 s).
        ("flow.yaml", "interactions: " + "[" * 101 + "]" * 101),
        (
            "block.yaml",
            "interactions:\n" + "".join(f"{'  ' * n}- k:\n" for n in range(101)) + "    " * 101 + "x",
        ),
    ],
)
def test_deep_nesting_is_one_line_and_exit_2(tmp_path: Path, name: str, text: str) -> None:
    source = tmp_path / name
    source.write_text(text)
    code, output = cli_import(source, "--out", tmp_path / "http.jsonl")
    assert code == 2 and "nested too deeply" in one_error_line(output)
    assert not (tmp_path / "http.jsonl").exists()


def test_the_input_size_is_capped(tmp_path: Path) -> None:
    huge = tmp_path / "huge.har"
    with huge.open("wb") as f:
        f.truncate(257 * 2**20)  # sparse: refused before a byte is read
    code, output = cli_import(huge, "--out", tmp_path / "http.jsonl")
    assert code == 2 and "import limit of 268435456 bytes" in one_error_line(output)
    small = har(tmp_path)
    small.write_text(small.read_text() + " " * 2**20)
    code, output = cli_import(small, "--out", tmp_path / "http.jsonl", "--max-mib", "1")
    assert code == 2 and "--max-mib" in one_error_line(output)
    assert cli_import(small, "--out", tmp_path / "http.jsonl", "--max-mib", "2")[0] == 0


def mutate(doc: dict[str, object], path: str, value: object) -> dict[str, object]:
    target: object = doc
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value  # type: ignore[index]
    return doc


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("log.entries.0.response.status", 99_999),
        ("log.entries.0.response.status", "abc"),
        ("log.entries.0.response.status", True),
        ("log.entries.0.time", float("nan")),
        ("log.entries.0.time", float("inf")),
        ("log.entries.0.time", -5),
        ("log.entries.0.time", 10**400),
        ("log.entries.0.request.method", {"a": 1}),
        ("log.entries.0.request.method", "GET /x HTTP/1.1\r\nHost: evil"),
        ("log.entries.0.request.url", ["https://a.example/"]),
        ("log.entries.0.request.url", "https://a.example:99999/"),
        ("log.entries.0.request.httpVersion", ["HTTP/2"]),
        ("log.entries.0.request.headers", [{"name": "x", "value": "\ud800"}]),
        ("log.entries.0.response.content", {"encoding": "base64", "text": 7}),
        ("log.entries", [7]),
    ],
    ids=lambda v: repr(v)[:24],
)
def test_odd_values_in_a_har_are_one_line_and_exit_2(tmp_path: Path, path: str, value: object) -> None:
    source = har(tmp_path)
    source.write_text(json.dumps(mutate(json.loads(source.read_text()), path, value)))
    code, output = cli_import(source, "--out", tmp_path / "http.jsonl")
    assert code == 2 and "not a valid HAR file" in one_error_line(output)
    assert not (tmp_path / "http.jsonl").exists()


def test_a_har_date_before_1970_or_unparsable_is_unknown(tmp_path: Path) -> None:
    source = har(tmp_path)
    doc = json.loads(source.read_text())
    doc["log"]["entries"][0]["startedDateTime"] = "0001-01-01T00:00:00Z"
    doc["log"]["entries"][1]["startedDateTime"] = "9999-99-99"
    source.write_text(json.dumps(doc))
    assert cli_import(source, "--out", tmp_path / "http.jsonl")[0] == 0
    assert [e.started for e in read_exchanges(tmp_path / "http.jsonl")] == [0.0, 0.0]
