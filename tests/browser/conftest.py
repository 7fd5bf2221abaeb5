"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, one browser per live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.support.live_server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser(server: LiveServer) -> Iterator[Browser]:
    # Depends on ``server`` so it starts after (and stops before) each live server: while the sync
    # Playwright driver is alive its event loop counts as running in this thread, and the server
    # fixture's migrations call ``asyncio.run``, which refuses to run inside a running loop.
    # Never skip: without Chromium the browser tests must fail loudly.
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is required for the browser tests and was not found at {CHROMIUM}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[object]:
    """A factory of fresh, isolated browser contexts (own cookies), all closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**kwargs: object) -> BrowserContext:
        context = browser.new_context(**kwargs)  # type: ignore[arg-type]
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
