"""`runner view` in a real headless Chromium (Debian's `chromium`, driven by Playwright from PyPI).

The page loads with no console errors and fetches nothing; clicking an llm span shows its prompt and
response; a diverged run shows its first diverging step and the diff; hostile strings render as text
(no dialog fires); a 10,000-span waterfall keeps only the rows in sight in the DOM. Screenshots go to
the test's tmp_path and are copied to bench/out/screenshots/ (a CI artifact folder).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from typer.testing import CliRunner

from packs.build import build
from runner.cli import app
from tests.integration.test_replay import runner
from tests.view.viewfixtures import HOSTILE, big_pack, diverged_run, session_pack

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"  # Debian's package (make unit/test install it); Playwright's download cannot work here
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "bench" / "out" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page with every console message, page error, dialog and request it saw."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1400, "height": 800})
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, index: Path) -> Page:
        self.page.goto(index.as_uri())
        self.page.wait_for_selector("body[data-ready='1']")
        return self.page

    def shot(self, tmp_path: Path, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        self.page.screenshot(path=str(path))
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / path.name)
        return path


def _export(tmp_path: Path, *paths: Path) -> Path:
    result = CliRunner().invoke(app, ["view", *map(str, paths), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    return tmp_path / "site" / "index.html"


def test_llm_span_shows_its_prompt_and_response(browser: Browser, tmp_path: Path) -> None:
    index = _export(tmp_path, session_pack(tmp_path))
    w = Watched(browser)
    page = w.open(index)
    page.click(".row[data-type='llm']")
    details = page.locator("#details")
    assert "Why does test_add fail?" in details.inner_text()
    assert "The operator is wrong." in details.inner_text()
    assert "tool call run_tests(" in details.inner_text()
    assert "Run pytest" in details.inner_text()  # the tool schema
    assert "def add(a, b): return a - b" in details.inner_text()  # the retrieval snippet
    w.shot(tmp_path, "viewer-llm")
    page.click(".row[data-type='tool']")
    assert (
        "1 failed, 2 passed" in details.inner_text() and "AssertionError: expected 3" in details.inner_text()
    )
    page.click(".row[data-type='http']")
    assert "recorded answer" in details.inner_text()
    page.click(".row[data-type='patch']")
    assert page.locator("#details .diff .add").first.inner_text() == "+    return a + b"
    w.shot(tmp_path, "viewer-patch")
    assert w.console == []
    assert all(url.startswith("file://") for url in w.requests), w.requests


def test_diverged_run_shows_the_first_diverging_step_and_its_diff(browser: Browser, tmp_path: Path) -> None:
    index = _export(tmp_path, diverged_run(tmp_path / "runs"), session_pack(tmp_path))
    w = Watched(browser)
    page = w.open(index)
    section = page.locator("#section")
    assert "diverged" in section.inner_text()
    assert page.locator("tr.first").get_attribute("data-step") == "c1"
    assert "First divergence: step c1" in section.inner_text()
    assert "behaviour changed" in section.inner_text()
    left = page.locator(".sbs .del").first.inner_text()
    right = page.locator(".sbs .add").first.inner_text()
    assert (left, right) == ("1 failed, 2 passed ", "2 failed, 1 passed ")
    w.shot(tmp_path, "viewer-diverged")
    page.click("tr[data-step='c1']")
    assert "2 failed, 1 passed" in page.locator("#details").inner_text()  # the replayed log
    page.click("button:has-text('cassette')")
    assert "miss: GET https://x.invalid/" in section.inner_text()
    assert w.console == []


def test_hostile_strings_render_as_text(browser: Browser, tmp_path: Path) -> None:
    index = _export(
        tmp_path, session_pack(tmp_path, text=HOSTILE), diverged_run(tmp_path / "runs", text=HOSTILE)
    )
    w = Watched(browser)
    page = w.open(index)
    for kind in ("session", "task", "llm", "tool", "http", "patch", "artifact"):
        page.click(f".row[data-type='{kind}']")
        assert "<script>alert(2)</script>" in page.locator("#details").inner_text()
    assert page.locator("#details img, #details script, #section img, #section script").count() == 0
    page.click("button:has-text('replay')")
    assert "<img src=x onerror=alert(1)>" in page.locator("#section").inner_text()
    for tab in range(page.locator("#tabs button").count()):
        page.click(f"button[data-tab='{tab}']")
    page.wait_for_timeout(200)  # an onerror handler would have fired by now
    w.shot(tmp_path, "viewer-hostile")
    assert w.dialogs == []
    assert page.locator("img").count() == 0
    assert w.console == []


def test_ten_thousand_spans_keep_only_the_visible_rows(browser: Browser, tmp_path: Path) -> None:
    index = _export(tmp_path, big_pack(tmp_path))
    w = Watched(browser)
    page = w.open(index)
    assert "span (10000)" in page.locator(".wf-head").inner_text()
    assert page.locator(".row").count() < 100
    page.locator(".wf").evaluate(
        "box => { box.scrollTop = box.scrollHeight; box.dispatchEvent(new Event('scroll')); }"
    )
    page.wait_for_function(
        "document.querySelectorAll('.row').length > 0 && document.querySelector('.wf').scrollTop > 0"
    )
    page.wait_for_timeout(100)
    names = page.locator(".row .name").all_inner_texts()
    assert any(n.endswith("9999") for n in names), names[-3:]
    assert page.locator(".row").count() < 100
    w.shot(tmp_path, "viewer-10k")
    assert w.console == []


@pytest.mark.docker
def test_replay_html_links_to_the_view_of_a_diverged_run(
    browser: Browser, own_images: Any, tmp_path: Path
) -> None:
    build(ROOT / "packs" / "src" / "demo-diverge", tmp_path)
    (tmp_path / "reports").mkdir()  # the report sits apart from runs/: the link is relative to it
    proc = runner(
        "replay", "demo-diverge.tar.zst", "--html", "reports/replay.html", "--markdown", "replay.md", cwd=tmp_path
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    href = re.findall(r"<a href='([^']+)'>view</a>", (tmp_path / "reports" / "replay.html").read_text())
    assert len(href) == 1 and href[0].startswith("../runs/demo-diverge/")
    index = (tmp_path / "reports" / unquote(href[0])).resolve()
    assert index.is_file()
    assert "runner view runs/demo-diverge/" in (tmp_path / "replay.md").read_text()
    w = Watched(browser)
    page = w.open(index)
    assert page.locator("tr.first").get_attribute("data-step") == "rerun-tests"
    assert "First divergence: step rerun-tests" in page.locator("#section").inner_text()
    assert "FAILED tests/test_stats.py::test_median_even" in page.locator(".sbs .add").all_inner_texts()[-2]
    w.shot(tmp_path, "viewer-replay-html")
    assert w.console == []
