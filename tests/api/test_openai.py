"""The OpenAI-compatible ``/v1`` routes through the official ``openai`` client against a real server:
SmolLM2 for chat, completions and (mean-pooled) embeddings; a fake engine for exact tool-call output."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.base import Generated, LoadSpec, Sampling
from skyllama.engine.fake import FakeEngine, FakeModel
from skyllama.errors import SkyllamaError

MODEL = "smollm2:135m"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def client(demo_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="ollama", max_retries=0)


@pytest.fixture
def fake_client(demo_fake_server: RunningServer) -> openai.OpenAI:
    """The client on a server whose engine is the fake (``fake_engine``)."""
    return openai.OpenAI(base_url=f"{demo_fake_server.url}/v1", api_key="ollama", max_retries=0)


def test_chat_completion_streamed_and_not(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8, temperature=0, seed=1)
    assert whole.object == "chat.completion" and whole.id.startswith("chatcmpl-")
    assert whole.system_fingerprint == "fp_ollama" and whole.model == MODEL and whole.created > 0
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert whole.usage and whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8, temperature=0,
                                                 seed=1, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done_and_sse_framing(demo_server: RunningServer) -> None:
    with httpx.stream("POST", f"{demo_server.url}/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": HELLO, "max_tokens": 4, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert not any('"usage"' in e for e in events)  # only with stream_options.include_usage


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Rome as JSON."}], max_tokens=40,
        temperature=0, response_format={"type": "json_schema",
                                        "json_schema": {"name": "weather", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), schema)


TOOL_OUTPUT = ['<tool', '_call>\n{"name": "get_', 'weather", "arguments": ', '{"city": "Paris"}}\n</tool_call>']


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_shape(fake_client: openai.OpenAI, fake_engine: FakeEngine, stream: bool) -> None:
    fake = fake_engine
    fake.enqueue(TOOL_OUTPUT)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(fake_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], stream=True))
        calls = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []]
        reason = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
        assert calls[0].index == 0
    else:
        r = fake_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
        calls, reason = r.choices[0].message.tool_calls or [], r.choices[0].finish_reason
    assert reason == "tool_calls" and len(calls) == 1
    assert calls[0].type == "function" and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert "<tools>" in fake.prompts[0]


def test_tool_results_round_trip(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake = fake_engine
    fake.enqueue(["It is sunny."])
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_abc", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "22 degrees and sunny"}]
    r = fake_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert r.choices[0].message.content == "It is sunny." and r.choices[0].finish_reason == "stop"
    assert "22 degrees and sunny" in fake.prompts[0] and "Paris" in fake.prompts[0]


def test_content_parts_and_sampling_options(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake = fake_engine
    fake.enqueue(["one two STOP three"])
    r = fake_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": "Count please."}]}],
        stop="STOP", temperature=0.2, top_p=0.9, presence_penalty=0.1, frequency_penalty=0.1)
    assert r.choices[0].message.content == "one two " and "Count please." in fake.prompts[0]


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.choices[0].text
    assert r.choices[0].finish_reason == "length" and r.usage and r.usage.completion_tokens == 8
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell."]
    floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert floats.object == "list" and [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 576 and floats.usage.prompt_tokens > 0
    raw = httpx.post(f"{client.base_url}embeddings", timeout=60, json={
        "model": MODEL, "input": texts[0], "encoding_format": "base64", "dimensions": 16}).json()
    decoded = struct.unpack("<16f", base64.b64decode(raw["data"][0]["embedding"]))
    assert abs(sum(x * x for x in decoded) - 1) < 1e-4
    default = client.embeddings.create(model=MODEL, input=texts[0])  # the client asks for base64
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-5)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert MODEL in models and models[MODEL].owned_by == "library" and models[MODEL].created > 0
    one = client.models.retrieve(MODEL)
    assert one.id == MODEL and one.object == "model" and one.created == models[MODEL].created


def test_errors_in_openai_shape(client: openai.OpenAI, demo_server: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="ghost", messages=HELLO)
    assert info.value.body == {"message": "model 'ghost' not found", "type": "not_found_error",
                               "param": None, "code": None}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ghost")
    r = httpx.post(f"{demo_server.url}/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{demo_server.url}/v1/embeddings", json={"model": MODEL, "input": "x", "encoding_format": "hex"})
    assert r.status_code == 400 and "encoding_format" in r.json()["error"]["message"]
    r = httpx.post(f"{demo_server.url}/v1/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


class _Failing(FakeModel):
    def generate(self, prompt: list[int], sampling: Sampling, **kwargs: Any) -> Iterator[str | Generated]:
        yield "Hel"
        raise SkyllamaError("engine fell over")


class _FailingEngine(FakeEngine):
    """A fake engine whose models fail after their first piece."""

    def load(self, spec: LoadSpec) -> FakeModel:
        return _Failing(spec, self)


def test_error_after_the_first_chunk_is_an_sse_error_event(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "failing"), engine=_FailingEngine()) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="ollama", max_retries=0)
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=60, json={
                "model": MODEL, "messages": HELLO, "stream": True}) as r:
            assert r.status_code == 200
            events = [line for line in r.iter_lines() if line]
        assert json.loads(events[0][6:])["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
        assert json.loads(events[-1][6:]) == {"error": {"message": "engine fell over", "type": "api_error",
                                                        "param": None, "code": None}}
        with pytest.raises(openai.APIError, match="engine fell over"):
            list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
