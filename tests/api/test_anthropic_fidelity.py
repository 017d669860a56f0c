"""``/v1/messages`` as Ollama's ``anthropic/`` and ``middleware/anthropic.go`` answer it (issue 20
item 3), through the real ``anthropic`` client on the fake engine: Ollama's checks and texts,
thinking dropped for a model without it, the stop sequence that fired, the stream's real
``input_tokens``, and ``/v1/messages/count_tokens``."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
HI = [{"role": "user", "content": "Hi"}]


def client(server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


@pytest.mark.parametrize(("body", "message"), [
    ({"max_tokens": 5, "messages": HI}, "model is required"),
    ({"model": MODEL, "messages": HI}, "max_tokens is required and must be positive"),
    ({"model": MODEL, "max_tokens": 0, "messages": HI}, "max_tokens is required and must be positive"),
    ({"model": MODEL, "max_tokens": 5}, "messages is required"),
    ({"model": MODEL, "max_tokens": 5, "messages": []}, "messages is required"),
    ({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
     "tool_use block missing required 'id' field"),
    ({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "input": {}}]}]},
     "tool_use block missing required 'name' field"),
])
def test_ollamas_checks_and_texts(demo_fake_server: RunningServer, fake_engine: FakeEngine, body: dict[str, Any],
                                  message: str) -> None:
    reply = httpx.post(f"{demo_fake_server.url}/v1/messages", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["type"] == "error" and error["error"] == {"type": "invalid_request_error", "message": message}
    assert fake_engine.prompts == []


def test_thinking_on_a_model_without_it_is_dropped(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["Hello"])
    reply = client(demo_fake_server).messages.create(model=MODEL, max_tokens=50, messages=HI,  # type: ignore[arg-type]
                                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in reply.content] == ["text"] and reply.content[0].text == "Hello"  # type: ignore[union-attr]
    # /api/chat still refuses it, as Ollama does outside its Anthropic front
    refused = httpx.post(f"{demo_fake_server.url}/api/chat", json={"model": MODEL, "messages": HI, "think": True})
    assert refused.status_code == 400 and "does not support thinking" in refused.json()["error"]


def test_stop_sequence_that_fired(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    c = client(demo_fake_server)
    fake_engine.enqueue(["Hello", " END", " more"])
    reply = c.messages.create(model=MODEL, max_tokens=50, messages=HI,  # type: ignore[arg-type]
                              stop_sequences=["NEVER", "END"])
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "END"
    assert reply.content[0].text == "Hello "  # type: ignore[union-attr]
    fake_engine.enqueue(["Hello", " END"])
    with c.messages.stream(model=MODEL, max_tokens=50, messages=HI,  # type: ignore[arg-type]
                           stop_sequences=["END"]) as stream:
        deltas = [e for e in stream if e.type == "message_delta"]
    assert deltas[0].delta.stop_reason == "stop_sequence" and deltas[0].delta.stop_sequence == "END"
    fake_engine.enqueue(["Hello"])  # stops set, none fired: end_turn, no stop_sequence
    plain = c.messages.create(model=MODEL, max_tokens=50, messages=HI, stop_sequences=["END"])  # type: ignore[arg-type]
    assert plain.stop_reason == "end_turn" and plain.stop_sequence is None


def test_streamed_usage_and_count_tokens(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    c = client(demo_fake_server)
    ask: dict[str, Any] = {"model": MODEL, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi there"}]}
    counted = c.messages.count_tokens(**ask)
    assert fake_engine.prompts == []  # counting generates nothing
    fake_engine.enqueue(["a", "b"])
    whole = c.messages.create(max_tokens=50, **ask)
    prompt = fake_engine.prompts[-1]
    assert counted.input_tokens == whole.usage.input_tokens == len(prompt) > 0  # the fake's ids are code points
    fake_engine.enqueue(["a", "b"])
    with c.messages.stream(max_tokens=50, **ask) as stream:
        events = list(stream)
    start = events[0]
    assert start.type == "message_start" and start.message.usage.input_tokens == counted.input_tokens
    end = [e for e in events if e.type == "message_delta"][0]
    assert end.usage.output_tokens == 2 and end.usage.input_tokens == counted.input_tokens
    more = c.messages.count_tokens(model=MODEL, system="Be brief.", messages=[
        {"role": "user", "content": "Hi there, and a much longer question than before"}])
    assert more.input_tokens > counted.input_tokens


def test_count_tokens_errors(demo_fake_server: RunningServer) -> None:
    c = client(demo_fake_server)
    with pytest.raises(anthropic.NotFoundError) as missing:
        c.messages.count_tokens(model="nope", messages=HI)  # type: ignore[arg-type]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    reply = httpx.post(f"{demo_fake_server.url}/v1/messages/count_tokens", json={"model": MODEL})
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "messages is required"
