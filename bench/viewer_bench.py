"""Viewer benchmark: a 10,000-span pack, exported by `runner view --out`, opened in headless Chromium.

Measures, in Debian's chromium driven by Playwright, the time from navigation to the waterfall's rows on
screen (the page sets body[data-ready]) and, separately, to the details of a clicked llm span. Prints
each beside its goal with the verdict and writes bench/out/viewer.json. Goal: open in under 2 s.

    python bench/viewer_bench.py [--spans 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from runner.view import site  # noqa: E402
from tests.view.viewfixtures import big_pack  # noqa: E402

GOAL_OPEN_S = 2.0
GOAL_CLICK_S = 0.5
CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        work = Path(tmp)
        pack = big_pack(work, args.spans)
        started = time.perf_counter()
        index = site.write_site(site.build([pack]), work / "site")
        export_s = time.perf_counter() - started
        page_bytes = sum(p.stat().st_size for p in index.parent.iterdir())
        opens, clicks = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for _ in range(args.runs):
                page = browser.new_page(viewport={"width": 1400, "height": 800})
                t0 = time.perf_counter()
                page.goto(index.as_uri())
                page.wait_for_selector(".row[data-type='llm']")
                opens.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                page.click(".row[data-type='llm']")
                page.wait_for_selector("#details .span-details")
                clicks.append(time.perf_counter() - t1)
                rows = page.locator(".row").count()
                page.close()
            browser.close()
    open_s, click_s = statistics.median(opens), statistics.median(clicks)
    result = {
        "spans": args.spans, "runs": args.runs, "page_bytes": page_bytes, "export_s": round(export_s, 3),
        "open_s": round(open_s, 3), "open_goal_s": GOAL_OPEN_S, "open_verdict": "met" if open_s < GOAL_OPEN_S else "missed",
        "click_s": round(click_s, 3), "click_goal_s": GOAL_CLICK_S, "click_verdict": "met" if click_s < GOAL_CLICK_S else "missed",
        "rows_in_dom": rows, "opens_s": [round(x, 3) for x in opens],
    }  # fmt: skip
    print(f"viewer: {args.spans} spans, page {page_bytes / 1e6:.1f} MB, export {export_s:.2f} s")
    print(f"  open in Chromium  {open_s:6.3f} s   goal < {GOAL_OPEN_S} s    {result['open_verdict']}")
    print(f"  click an llm span {click_s:6.3f} s   goal < {GOAL_CLICK_S} s  {result['click_verdict']}")
    print(f"  rows in the DOM   {rows} of {args.spans}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "viewer.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
