"""First paint of the dashboard in Chromium (Debian's, driven by Playwright), cold cache.

    ./run.sh bench dashboard [--url URL] [--loads 10]

Without ``--url`` it writes the gold tables of ``bench api`` (every physical market × every
commodity × two years of days) and starts the API as the `api` service does; with ``--url`` it
measures a running API (e.g. the stack after ``./run.sh replay``). Each load is a new browser
context (nothing cached). Prints, as medians over the loads: first contentful paint, the moment
the live board's rows are drawn, the page's load event, its JavaScript heap once ready
(Chromium's ``performance.memory``), and what the page fetched.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from playwright.sync_api import sync_playwright

from bench.api import server, throwaway, write_gold

CHROMIUM = "/usr/bin/chromium"

TIMINGS = """() => ({
  fcp: performance.getEntriesByName("first-contentful-paint")[0].startTime,
  board: performance.getEntriesByName("board-rendered")[0].startTime,
  load: performance.getEntriesByType("navigation")[0].loadEventEnd,
  requests: performance.getEntriesByType("resource").length + 1,
  kilobytes: (performance.getEntriesByType("resource")
    .reduce((sum, r) => sum + r.transferSize, 0)
    + performance.getEntriesByType("navigation")[0].transferSize) / 1024,
  rows: document.querySelectorAll("#board tbody tr").length,
  heap: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : NaN,
})"""


def measure(url: str, loads: int) -> None:
    samples = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for i in range(loads + 1):  # the first load warms the server's caches: not counted
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", timeout=60_000)
            if i:
                samples.append(page.evaluate(TIMINGS))
            context.close()
        browser.close()
    print(f"dashboard {url}: {loads} cold loads, {samples[0]['rows']} board rows")
    for name, unit in (("fcp", "ms"), ("board", "ms"), ("load", "ms"), ("heap", "MB")):
        values = [s[name] for s in samples]
        print(
            f"  {name:<8} median {statistics.median(values):7.0f} {unit}"
            f"   max {max(values):7.0f} {unit}"
        )
    print(
        f"  fetched  {statistics.median(s['requests'] for s in samples):.0f} requests, "
        f"{statistics.median(s['kilobytes'] for s in samples):.0f} KiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="./run.sh bench dashboard", description=__doc__.split("\n")[0])
    p.add_argument("--url", help="a running API (default: start one on bench api's gold tables)")
    p.add_argument("--loads", type=int, default=10)
    args = p.parse_args()
    if args.url:
        measure(args.url.rstrip("/") + "/", args.loads)
        return
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        settings, env = throwaway(tmp)
        rows = write_gold(settings)
        print(f"gold: {rows} daily rows")
        with server(settings, env) as url:
            measure(url + "/", args.loads)


if __name__ == "__main__":
    main()
