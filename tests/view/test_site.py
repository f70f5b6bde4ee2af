"""`runner view --out`: the static export, its data block, its refusals (through the CLI)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from runner.cli import app
from runner.privacy import crypto
from runner.privacy.mask import PrivacyOptions
from runner.view import site
from tests.view.viewfixtures import HOSTILE, diverged_run, session_pack

GITHUB_TOKEN = "ghp_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"


def _data(index: Path) -> dict[str, object]:
    html = index.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="view-data">(.*?)</script>', html, re.S)
    assert block is not None
    loaded: dict[str, object] = json.loads(block.group(1))
    return loaded


def test_export_of_a_pack_and_a_run_holds_their_views(tmp_path: Path) -> None:
    pack = session_pack(tmp_path)
    run = diverged_run(tmp_path / "runs")
    result = CliRunner().invoke(app, ["view", str(pack), str(run), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == ["index.html", "view.css", "view.js"]
    data = _data(tmp_path / "site" / "index.html")
    pack_src, run_src = data["sources"]  # type: ignore[misc]
    assert [r[3] for r in pack_src["spans"]] == [
        "session",
        "task",
        "llm",
        "tool",
        "http",
        "patch",
        "artifact",
    ]
    assert run_src["packs"][0]["first_divergence"] == "c1"
    assert run_src["packs"][0]["cause"] == "behaviour changed"
    assert "2 failed, 1 passed" in run_src["logs"]["c1.stdout"]
    assert data["revealed"] is False


def test_the_page_loads_nothing_from_anywhere_else(tmp_path: Path) -> None:
    index = site.write_site(site.build([session_pack(tmp_path)]), tmp_path / "site")
    html = index.read_text(encoding="utf-8")
    skeleton = re.sub(
        r'(<script type="application/json" id="view-data">).*?(</script>)', r"\1\2", html, flags=re.S
    )
    for text in (skeleton, (index.parent / "view.js").read_text(), (index.parent / "view.css").read_text()):
        assert not re.search(r"https?://", text)
        assert "@import" not in text and "url(" not in text
    assert re.findall(r'(?:src|href)="([^"]*)"', skeleton) == ["view.css", "view.js"]
    assert not re.search(
        r"\.innerHTML\s*=|insertAdjacentHTML|document\.write", (index.parent / "view.js").read_text()
    )


def test_hostile_strings_cannot_end_the_data_block(tmp_path: Path) -> None:
    index = site.write_site(site.build([session_pack(tmp_path, text=HOSTILE)]), tmp_path / "site")
    html = index.read_text(encoding="utf-8")
    start = html.index('id="view-data">') + len('id="view-data">')
    block = html[start : html.index("</script>", start)]
    assert "<" not in block and "\u2028" not in block and "\u2029" not in block
    names = [row[2] for row in json.loads(block)["sources"][0]["spans"]]
    assert names[0] == f"session {HOSTILE}"  # every character survives, as data


def test_embed_json_escapes_what_html_would_read() -> None:
    text = site.embed_json({"x": "</script><!--\u2028\u2029"})
    assert text == '{"x":"\\u003c/script>\\u003c!--\\u2028\\u2029"}'
    assert json.loads(text) == {"x": "</script><!--\u2028\u2029"}


def test_key_with_out_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    ring = tmp_path / "acme.keys"
    crypto.save_keyring(crypto.new_keyring("acme"), ring)
    pack = session_pack(tmp_path)
    result = CliRunner().invoke(app, ["view", str(pack), "--key", str(ring), "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "static export" in result.output
    assert not (tmp_path / "site").exists()


def test_masked_by_default_and_revealed_only_with_the_key(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    pack = session_pack(
        tmp_path, text=f" {GITHUB_TOKEN}", privacy=PrivacyOptions(keyring=ring), reason="fix add"
    )
    masked = json.dumps(site.build([pack]))
    assert GITHUB_TOKEN not in masked and "REDACTED_" in masked
    revealed = site.build([pack], ring)
    assert revealed["revealed"] is True and GITHUB_TOKEN in json.dumps(revealed)
    try:
        site.write_site(revealed, tmp_path / "site")
    except Exception as e:  # the writer itself refuses too, whoever calls it
        assert "never holds revealed values" in str(e)
    else:
        raise AssertionError("a revealed view was exported")
    assert not (tmp_path / "site").exists()


def test_out_into_a_folder_with_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["view", str(session_pack(tmp_path)), "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["keep.txt"]


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    bad_run = tmp_path / "runs" / "x" / "20261125T000000"
    bad_run.mkdir(parents=True)
    (bad_run / "report.json").write_text("{not json")
    tampered = session_pack(tmp_path)
    raw = bytearray(tampered.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    tampered.write_bytes(bytes(raw))
    for target in (tmp_path / "missing.tar.zst", bad_run, tampered):
        result = CliRunner().invoke(app, ["view", str(target), "--out", str(tmp_path / "site")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and str(target.name) in result.output
        assert not (tmp_path / "site").exists()
