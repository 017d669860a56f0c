"""The console's chat in a real headless Chromium against a real server: streamed answers, Stop
(which cancels the generation on the server), timings from the final chunk, and the real model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"


def send(tab: Any, text: str) -> Any:
    tab.page.fill("#chat-input", text)
    tab.page.click("#chat-send")
    return tab.page.locator("#chat-log li.assistant").last


def test_chat_streams_then_stop_cancels_the_generation(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                                       console: Callable[..., Any]) -> None:
    pieces = [f"w{i} " for i in range(400)]
    fake_engine.enqueue(pieces)
    fake_engine.token_delay = 0.03  # 400 tokens: 12 s if nobody stops it
    tab = console(demo_fake_server.url).open("chat")
    tab.page.select_option("#chat-model", MODEL)
    answer = send(tab, "tell me a long story")
    # streamed: part of the answer is on the page while the generation still runs
    tab.page.wait_for_function("() => (document.querySelector('#chat-log li.assistant .content') || {}).textContent"
                               "?.split(' ').length > 5")
    assert "streaming" in (answer.get_attribute("class") or "")
    assert not tab.page.is_disabled("#chat-stop") and tab.page.is_disabled("#chat-send")
    tab.page.click("#chat-stop")
    tab.page.wait_for_selector("#chat-log li.assistant.stopped")
    shown = answer.locator(".content").inner_text()
    assert 5 < len(shown.split()) < len(pieces) and "".join(pieces).startswith(shown.strip())
    assert "stopped after" in answer.locator(".timings").inner_text()
    # the server cancelled it: the slot is free at once, so the next answer does not wait 12 s behind it
    fake_engine.token_delay = 0.0
    fake_engine.enqueue(["short ", "answer"])
    started = time.monotonic()
    second = send(tab, "and now briefly")
    tab.page.wait_for_function("() => document.querySelectorAll('#chat-log li.assistant .timings')[1]?.textContent"
                               ".includes('tokens/s')", timeout=8_000)
    assert time.monotonic() - started < 5
    assert second.locator(".content").inner_text() == "short answer"
    # the timings come from the final chunk: 2 tokens, a done reason
    timings = second.locator(".timings").inner_text()
    assert "2 tokens" in timings and "done: stop" in timings and "first token" in timings
    tab.screenshot("chat-stopped")


def test_chat_sends_system_options_format_and_tools(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                                    console: Callable[..., Any]) -> None:
    fake_engine.enqueue(['{"answer": "blue"}'])
    tab = console(demo_fake_server.url).open("chat")
    page = tab.page
    page.select_option("#chat-model", MODEL)
    page.fill("#chat-system", "You answer in JSON.")
    page.fill("#opt-num_predict", "16")
    page.check("input[name=chat-format][value=schema]")
    assert page.is_visible("#chat-schema")
    page.fill("#chat-schema", '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}')
    requests: list[Any] = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/api/chat") else None)
    answer = send(tab, "What colour is the sky?")
    page.wait_for_function("() => document.querySelector('#chat-log li.assistant .timings')?.textContent.includes('done')")
    assert answer.locator(".content").inner_text() == '{"answer": "blue"}'
    body = requests[0].post_data_json
    assert body["messages"][0] == {"role": "system", "content": "You answer in JSON."}
    assert body["options"] == {"num_predict": 16} and body["format"]["required"] == ["answer"]
    assert body["stream"] is True and "tools" not in body
    headers = requests[0].headers
    assert "authorization" not in headers and "cookie" not in headers  # auth off here: no key to send
    assert "You answer in JSON." in fake_engine.prompts[-1]  # the system prompt reached the template
    # tools: sent as given
    page.check("#chat-tools-on")
    page.fill("#chat-tools", '[{"type": "function", "function": {"name": "get_weather", "parameters": '
                             '{"type": "object", "properties": {"city": {"type": "string"}}}}}]')
    page.check("input[name=chat-format][value='']")
    send(tab, "Weather in Paris?")
    page.wait_for_function("() => document.querySelectorAll('#chat-log li.assistant .timings')[1]?.textContent.includes('done')")
    assert requests[-1].post_data_json["tools"][0]["function"]["name"] == "get_weather"
    assert "format" not in requests[-1].post_data_json
    # a bad JSON schema is refused in the page, and nothing is sent
    page.check("input[name=chat-format][value=schema]")
    page.fill("#chat-schema", "{not json")
    count = len(requests)
    page.fill("#chat-input", "again")
    page.click("#chat-send")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('Not valid JSON')")
    assert len(requests) == count


@pytest.mark.model
def test_chat_with_the_real_demo_model(demo_server: RunningServer, console: Callable[..., Any]) -> None:
    tab = console(demo_server.url).open("chat")
    page = tab.page
    page.select_option("#chat-model", MODEL)
    page.fill("#opt-num_predict", "12")
    page.fill("#opt-temperature", "0")
    page.fill("#opt-seed", "7")
    answer = send(tab, "Why is the sky blue?")
    page.wait_for_function("() => document.querySelector('#chat-log li.assistant .timings')?.textContent"
                           ".includes('tokens/s')", timeout=120_000)
    assert answer.locator(".content").inner_text().strip()
    timings = answer.locator(".timings").inner_text()
    assert "12 tokens" in timings and "done: length" in timings and "server TTFT" in timings
    tab.screenshot("chat-real-model")
