"""Browser fixtures: Debian's headless Chromium, driven by Playwright's Python package.

No test downloads a browser (never ``playwright install``): Playwright launches the system's
``/usr/bin/chromium`` (``executable_path``), which ``infra/ci/install-chromium.sh`` installs and
``.ci/run`` calls. Without it, every browser test is skipped, saying how to install it.
Each page records console errors and failed page scripts (a CSP violation is one), and the
test fails if there were any. Screenshots go to ``tests/ui/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("SKYLLAMA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing "
                                   "(pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed: run `bash infra/ci/install-chromium.sh` "
                    "(apt-get install chromium); no test downloads a browser")
    with sync_api.sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (its own --user-data-dir)
        chromium = playwright.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


class Console:
    """One browser tab on a server's ``/ui/``, with what went wrong in it."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def open(self, tab: str = "chat", key: str | None = None) -> Console:
        self.page.goto(f"{self.url}/ui/#{tab}")
        self.page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        if key is not None:
            self.page.fill("#api-key", key)
            self.page.click("#key-form button[type=submit]")
            self.page.wait_for_function("() => document.querySelector('#whoami').textContent.includes('key')")
        return self

    def tab(self, name: str) -> None:
        self.page.click(f"#tabs [data-tab={name}]")
        self.page.wait_for_selector(f"#panel-{name}:not([hidden])")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def console(browser: Any) -> Iterator[Callable[..., Console]]:
    """``console(server_url)`` opens a new tab (its own context: no storage shared between tabs)."""
    opened: list[tuple[Any, Console]] = []

    def make(url: str, **context: Any) -> Console:
        ctx = browser.new_context(viewport={"width": 1280, "height": 860}, **context)
        tab = Console(ctx.new_page(), url)
        opened.append((ctx, tab))
        return tab

    yield make
    errors = [e for _ctx, tab in opened for e in tab.errors if not _expected(e)]
    for ctx, _tab in opened:
        ctx.close()
    assert not errors, errors


def _expected(error: str) -> bool:
    # a 401/403/404 answer the test provoked on purpose is logged by Chromium as a failed resource
    return "Failed to load resource: the server responded with a status of 40" in error
