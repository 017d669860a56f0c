"""Take the README's console screenshot (docs/console.png) from a running skyllama.

Usage: ``python infra/console_screenshot.py http://127.0.0.1:11434`` with ``skyllama serve --demo``
running there. Drives Debian's chromium (never downloads a browser) with Playwright, asks the demo
chat model one short question (greedy, 40 tokens) and saves the page at 1100x700 as a palette PNG.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "console.png"


def main(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(f"{url}/ui/#chat")
        page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        page.select_option("#chat-model", "smollm2:135m")
        page.fill("#chat-system", "You are a concise assistant.") if page.locator("#chat-system").count() else None
        page.fill("#opt-num_predict", "40")
        page.fill("#opt-temperature", "0")
        page.fill("#chat-input", "Why is the sky blue?")
        page.click("#chat-send")
        page.wait_for_function("() => document.querySelector('#chat-log li.assistant .timings')?.textContent"
                               ".includes('tokens/s')", timeout=300_000)
        OUT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(OUT))
        browser.close()
    print(OUT)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:11434")
