"""The dashboard in a real browser: Debian's Chromium driven by Playwright (its own browser
download is not reachable here), a page watched for console errors and failed requests, and
the API it talks to served on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse

import uvicorn
from playwright.sync_api import Browser, Page, Request, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from lakehouse.config.settings import Settings
from scripts.isolated_stack import free_ports
from serving_api.app import create_app

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 60_000  # generous: the box is shared, and a replay is heavy
DESKTOP = {"width": 1366, "height": 900}


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what it did: console errors, failed requests, every URL it asked for."""

    page: Page
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    pending: list[Request] = field(default_factory=list)  # asked for, not answered yet

    def account(self) -> str:
        """What the page met, for a failure's message: errors, failed and unanswered requests."""
        waiting = [r.url for r in self.pending]
        return f"errors {self.errors}, failed {self.failed}, unanswered {waiting}"

    def _answered(self, request: Request) -> None:
        if request in self.pending:
            self.pending.remove(request)

    def settle(self, timeout_ms: float = WAIT_MS) -> None:
        """Wait until every request the page made is answered: a reload aborts the ones in
        flight, which would count as failed (a re-render's fetches on a slow box)."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self.pending and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # Playwright delivers the page's events meanwhile

    def assert_clean(self, base: str) -> None:
        assert (self.errors, self.failed) == ([], []), self.account()
        hosts = {urlparse(u).hostname for u in self.requested}
        assert hosts == {urlparse(base).hostname}, f"requests left the API: {hosts}"


def watch(browser: Browser, base: str, viewport: dict[str, int] = DESKTOP) -> Watched:
    context = browser.new_context(viewport=viewport, base_url=base)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page)
    page.on("console", lambda m: m.type == "error" and watched.errors.append(m.text))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("requestfailed", lambda r: watched.failed.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and watched.failed.append(f"{r.url}: {r.status}"))
    page.on("request", lambda r: (watched.requested.append(r.url), watched.pending.append(r)))
    page.on("requestfinished", watched._answered)
    page.on("requestfailed", watched._answered)
    return watched


def open_page(watched: Watched, name: str = "board", timeout_ms: float = WAIT_MS) -> Page:
    """The dashboard at page ``name``, once its start is done (``body[data-ready]``); a start
    that does not end in ``timeout_ms`` fails with what the page met."""
    page = watched.page
    page.goto(f"/#{name}")
    try:
        page.wait_for_selector("body[data-ready=true]", timeout=timeout_ms)
    except PlaywrightTimeout as exc:
        raise AssertionError(f"#{name} did not get ready: {watched.account()}") from exc
    return page


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The API on a free loopback port, in a thread of this process; yields its URL."""
    (port,) = free_ports(1)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
