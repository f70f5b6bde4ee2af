"""The one click: `runner view --registry` served in headless Chromium, Roll back with a reason, and the
pointer moves back on the page and in `runner config current` (the same code path as `runner rollback`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.config.conftest import PRINCIPAL, cli, registry  # noqa: F401  (a fixture)
from tests.integration.test_viewer import Watched, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_roll_back_from_the_page(browser: Browser, registry: Path, tmp_path: Path) -> None:  # noqa: F811
    for n in (1, 2):
        assert cli("config", "promote", "staging", str(n), "--registry", str(registry)).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNNER_PRINCIPAL": PRINCIPAL}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "view", "--registry", str(registry)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = "http://127.0.0.1:" + line.split("http://127.0.0.1:")[1].split()[0]
        w = Watched(browser)
        page = w.page
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        card = page.locator(".env[data-env='staging']")
        assert card.locator("[data-role='current']").inner_text() == "2"
        assert "v1 (ungated) → v2 (ungated)" in card.inner_text()
        card.get_by_role("button", name="Roll back").click()  # no reason: refused on the page
        assert "Give a reason" in page.locator("#env-status").inner_text()
        card.locator("input").fill("error rate up <b>after</b> v2")
        card.get_by_role("button", name="Roll back").click()
        page.wait_for_selector("#env-status.good")
        assert "staging: 2 -> version 1" in page.locator("#env-status").inner_text()
        card = page.locator(".env[data-env='staging']")
        assert card.locator("[data-role='current']").inner_text() == "1"
        assert card.locator("b").count() == 0  # the reason renders as text
        w.shot(tmp_path, "viewer-rollback")
        assert not w.console and not w.dialogs, (w.console, w.dialogs)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    current = cli("config", "current", "staging", "--json", "--registry", str(registry))
    assert json.loads(current.stdout)["version"] == 1
    assert "error rate up <b>after</b> v2" in cli("config", "history", "--registry", str(registry)).output
