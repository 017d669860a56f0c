"""The console's Models, Usage and Keys views in a real headless Chromium against real servers:
a pull from a (slow) registry moves the progress bar, the usage charts are drawn from the usage
that real requests recorded, and a new key's secret is shown once, works, and is gone after."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from fake_registry import FakeRegistry, serve_registry
from serving import RunningServer, clone_models, run_server
from skyllama.engine.fake import FakeEngine
from skyllama.pricing import Prices

MODEL = "smollm2:135m"
CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'
PRICES = "million_tokens=2"


@pytest.fixture(scope="module")
def keyed_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(scope="module")
def keyed(demo_models: Path, tmp_path_factory: pytest.TempPathFactory, keyed_engine: FakeEngine) -> Iterator[RunningServer]:
    """Auth on, a price per token (so the cost chart is more than the request price)."""
    folder = clone_models(demo_models, tmp_path_factory.mktemp("ui-keyed") / "models")
    with run_server(folder, engine=keyed_engine, auth="on", prices=PRICES) as running:
        yield running


def key(server: RunningServer, *scopes: str, owner: str, **quotas: int) -> tuple[str, str]:
    secret, record = server.runtime.keys.create_key(name="ui", owner=owner, scopes=list(scopes), **quotas)
    return secret, record["id"]


def settled(server: RunningServer, key_id: str, count: int) -> None:
    """Usage is recorded once the last byte is sent: the client may be a moment ahead."""
    deadline = time.monotonic() + 10
    while len(server.runtime.meter.records(key_id)) < count:
        assert time.monotonic() < deadline, f"{key_id}: fewer than {count} usage records"
        time.sleep(0.02)


def usage_answers(tab: Any) -> list[tuple[str, dict[str, Any]]]:
    """(url, JSON) of every successful GET /api/usage the page makes from now on."""
    answers: list[tuple[str, dict[str, Any]]] = []

    def keep(response: Any) -> None:
        if "/api/usage?" in response.url and response.status == 200:
            answers.append((response.url, response.json()))

    tab.page.on("response", keep)
    return answers


def bars(tab: Any, chart: int) -> dict[tuple[str, str], float]:
    """(series, day) -> value of the bars of the chart-th usage chart, as drawn in the SVG."""
    drawn = tab.page.eval_on_selector_all(
        f"#usage-charts figure:nth-of-type({chart + 1}) rect.bar",
        "els => els.map(e => [e.dataset.series, e.dataset.day, Number(e.dataset.value)])")
    return {(series, day): value for series, day, value in drawn}


def test_pull_shows_live_progress(demo_models: Path, tmp_path: Path, console: Callable[..., Any]) -> None:
    # 12 MiB in 64 KiB pieces, about 2.5 s; over 4 MiB, since the download counts what it has
    # written to disk, in 4 MiB appends (download.APPEND_CHUNK)
    registry = FakeRegistry(chunk=64 << 10, delay=0.012)
    layer = os.urandom(12 << 20)
    registry.publish(CONFIG, [layer])
    folder = tmp_path / "pulled"
    folder.mkdir()
    with serve_registry(registry), run_server(folder, registry_allow_loopback=True, pull_parts=1) as server:
        name = registry.url.removeprefix("http://") + "/ns/slow:v1"
        tab = console(server.url).open("models")
        page = tab.page
        page.fill("#pull-name", name)
        page.check("#pull-insecure")
        page.click("#pull-form button[type=submit]")
        # part way: the bar is neither empty nor full and the line counts the bytes
        page.wait_for_function("() => { const b = document.querySelector('#pull-progress');"
                               " return !b.hidden && b.value > 0.05 && b.value < 0.95; }", timeout=15_000)
        middle = page.inner_text("#pull-status")
        assert middle.startswith("pulling ") and " of 12.6 MB)" in middle, middle  # the layer's size, in the page's units
        assert 0 < registry.served < len(layer) + len(CONFIG)  # still downloading while the bar moves
        tab.screenshot("models-pulling")
        page.wait_for_function("() => document.querySelector('#pull-status').textContent.startsWith('success')",
                               timeout=30_000)
        assert page.eval_on_selector("#pull-progress", "b => b.value") == 1
        # the list is refreshed: the pulled model is in it, as the server lists it
        page.wait_for_selector(f"#models-table tr[data-model='{name}']")
        listed = [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]
        assert name in listed


def test_usage_charts_render_from_real_usage(keyed: RunningServer, keyed_engine: FakeEngine,
                                            console: Callable[..., Any]) -> None:
    secret, key_id = key(keyed, "inference", owner="erin", tokens_per_day=50_000, rpm=120)
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {secret}"})
    for reply in (["blue ", "sky"], ["green ", "grass ", "too"]):
        keyed_engine.enqueue(reply)
        client.chat(model=MODEL, messages=[{"role": "user", "content": "what colour?"}])
    client.embed(model="all-minilm", input=["a", "b"])
    settled(keyed, key_id, 3)
    usage = httpx.get(keyed.url + "/api/usage", headers={"Authorization": f"Bearer {secret}"}).json()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    [day] = [d for d in usage["days"] if d["date"] == today]
    rows = {m["model"]: m for m in day["models"]}
    assert rows[MODEL]["requests"] == 2 and rows[MODEL]["completion_tokens"] == 5

    # what the page drew is what the server answered it (the page's own calls are metered too,
    # under model "-", so the figures are read from the answers it got)
    tab = console(keyed.url)
    answers = usage_answers(tab)
    tab.open("usage", key=secret)
    page = tab.page
    page.wait_for_selector("#usage-charts figure rect.bar")
    [seen] = [a for url, a in answers if "days=14" in url]
    [shown_day] = [d for d in seen["days"] if d["date"] == today]
    shown = {m["model"]: m for m in shown_day["models"]}
    assert shown[MODEL]["requests"] == rows[MODEL]["requests"] and shown[MODEL]["completion_tokens"] == 5
    requests, tokens, cost = (bars(tab, i) for i in range(3))
    for model, row in shown.items():  # every bar is the server's own figure for that model and day
        assert requests[(model, today)] == row["requests"]
        if row["prompt_tokens"] + row["completion_tokens"]:
            assert tokens[(model, today)] == row["prompt_tokens"] + row["completion_tokens"]
        assert cost[(model, today)] == pytest.approx(Prices.parse(PRICES).cost_of(row), rel=1e-9)
    assert {s for s, _d in requests} == set(shown)
    quota = page.inner_text("#usage-quota")
    assert f"{seen['tokens_today']} of 50000" in quota and "120 requests per minute" in quota
    assert page.locator("#usage-table tbody tr").count() == len(shown)
    tab.screenshot("usage-key")

    # the admin view across keys: a series per key, this key's its requests of every model
    admin, _ = key(keyed, "admin", owner="ops")
    board = console(keyed.url)
    answers = usage_answers(board)
    board.open("usage", key=admin)
    board.page.select_option("#usage-days", "7")
    board.page.select_option("#usage-key", "*")
    board.page.click("#usage-form button[type=submit]")
    board.page.wait_for_selector(f"#usage-charts figure rect.bar[data-series='{key_id}']")
    assert "by key" in board.page.inner_text("#usage-charts figure:nth-of-type(1) figcaption")
    [theirs] = [a for url, a in answers if "days=7" in url and f"key={key_id}" in url]
    [their_day] = [d for d in theirs["days"] if d["date"] == today]
    assert bars(board, 0)[(key_id, today)] == sum(m["requests"] for m in their_day["models"])
    board.screenshot("usage-all-keys")


def test_key_creation_shows_the_secret_once(keyed: RunningServer, console: Callable[..., Any]) -> None:
    admin, _ = key(keyed, "admin", owner="ops")
    tab = console(keyed.url).open("keys", key=admin)
    page = tab.page
    page.wait_for_selector("#keys-table tbody tr")
    page.fill("#newkey-name", "laptop")
    page.fill("#newkey-owner", "frank")
    page.fill("#newkey-tpd", "1000")
    page.click("#key-create-form button[type=submit]")
    page.wait_for_selector("#newkey-secret:not([hidden])")
    secret = page.inner_text("#newkey-secret-value").strip()
    assert len(secret) >= 32
    # it is a working key of that owner, with its quota
    mine = httpx.get(keyed.url + "/api/usage", headers={"Authorization": f"Bearer {secret}"})
    assert mine.status_code == 200 and mine.json()["owner"] == "frank"
    assert mine.json()["quotas"] == {"tokens_per_day": 1000}
    new_id = mine.json()["key"]
    page.wait_for_selector(f"#keys-table tr[data-key='{new_id}']")
    assert "frank" in page.inner_text(f"#keys-table tr[data-key='{new_id}']")
    tab.screenshot("keys-created")
    # the server never gives it back: not in the list, not in the page once dismissed
    listed = httpx.get(keyed.url + "/api/keys", headers={"Authorization": f"Bearer {admin}"})
    assert listed.status_code == 200 and secret not in listed.text
    page.click("#newkey-done")
    assert page.is_hidden("#newkey-secret") and secret not in page.content()
    # nor after a tab switch or a reload (the admin key is kept for the tab; the secret is not)
    tab.tab("usage")
    tab.tab("keys")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector(f"#keys-table tr[data-key='{new_id}']")
    assert secret not in page.content()
    assert all(secret not in str(v) for v in page.evaluate("() => Object.values(sessionStorage)"))
