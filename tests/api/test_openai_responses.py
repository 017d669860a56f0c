"""``POST /v1/responses`` (OpenAI's Responses API, as Ollama's ``openai/responses.go``) through the
real ``openai`` client's ``client.responses.create``, streamed and not: the fake engine for exact
text and tool calls, SmolLM2 once for a real generation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.base import Generated, LoadSpec, Sampling
from skyllama.engine.fake import FakeEngine, FakeModel
from skyllama.errors import SkyllamaError

MODEL = "smollm2:135m"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def fake_client(demo_fake_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_fake_server.url}/v1", api_key="ollama", max_retries=0)


def test_string_input_and_instructions(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["Hello", " there"])
    reply = fake_client.responses.create(model=MODEL, input="Say hi", instructions="Be brief.", max_output_tokens=9,
                                         temperature=0.5)
    assert reply.output_text == "Hello there" and reply.status == "completed" and reply.id.startswith("resp_")
    assert reply.instructions == "Be brief." and reply.max_output_tokens == 9 and reply.temperature == 0.5
    assert reply.output[0].type == "message" and reply.output[0].role == "assistant"
    assert reply.usage and reply.usage.output_tokens == 2
    assert reply.usage.input_tokens > 0 and reply.usage.total_tokens == reply.usage.input_tokens + 2
    assert reply.completed_at and reply.created_at
    prompt = fake_engine.prompts[-1]  # SmolLM2's ChatML: the system message first, then the user's
    assert prompt.index("<|im_start|>system\nBe brief.") < prompt.index("<|im_start|>user\nSay hi")


def test_message_list_input(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["Paris"])
    reply = fake_client.responses.create(model=MODEL, input=[
        {"role": "developer", "content": "Answer in one word."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Paris."}]},
        {"role": "user", "content": "And again?"}])
    assert reply.output_text == "Paris"
    prompt = fake_engine.prompts[-1]
    for text in ("Capital of France?", "<|im_start|>assistant\nParis.", "And again?"):
        assert text in prompt


def test_streamed_events_and_sequence_numbers(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["a", "b", "c"])
    events = list(fake_client.responses.create(model=MODEL, input="x", stream=True))
    types = [e.type for e in events]
    # Text that piles up while the client is being written to leaves as one delta (worker.py,
    # runner/remote.py), so three tokens are one to three deltas: compare with the run collapsed.
    collapsed = [t for i, t in enumerate(types) if not (t == "response.output_text.delta" and types[i - 1] == t)]
    assert collapsed == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert 1 <= types.count("response.output_text.delta") <= 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "abc"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == "abc" and done.usage and done.usage.output_tokens == 3
    assert events[0].response.status == "in_progress" and events[0].response.id == done.id


@pytest.mark.parametrize("stream", [False, True])
def test_tools_and_function_calls(fake_client: openai.OpenAI, fake_engine: FakeEngine, stream: bool) -> None:
    fake_engine.enqueue(['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'])
    if stream:
        events = list(fake_client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER], stream=True))
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds and "response.output_text.delta" not in kinds
        reply = events[-1].response
    else:
        reply = fake_client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER])
    calls = [item for item in reply.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].call_id.startswith("call_") and reply.tools and reply.tools[0].name == "get_weather"
    assert "get_weather" in fake_engine.prompts[-1]  # the tool reached the template
    # the call and its output go back as input items: an assistant tool call, then a tool message
    fake_engine.enqueue(["Sunny"])
    follow = fake_client.responses.create(model=MODEL, tools=[WEATHER], input=[
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "22 C and sunny"}])
    assert follow.output_text == "Sunny"
    history = fake_engine.prompts[-1].split("Weather?", 1)[1]  # after the user's message: the call, its output
    assert history.index("get_weather") < history.index("Paris") < history.index("22 C and sunny")


def post(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/responses", json=body, timeout=60)


@pytest.mark.parametrize(("body", "status", "kind", "message"), [
    ({"model": "missing", "input": "x"}, 404, "not_found_error", "model 'missing' not found"),
    ({"model": MODEL, "input": 3}, 400, "invalid_request_error", "input must be a string or array"),
    ({"model": MODEL, "input": [{"content": "x"}]}, 400, "invalid_request_error",
     "input[0]: input item missing required 'type' field"),
    ({"model": MODEL, "input": [{"type": "bogus"}]}, 400, "invalid_request_error",
     'input[0]: unknown input item type: "bogus"'),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400,
     "invalid_request_error", "file inputs are not currently supported"),
    ({"model": MODEL, "input": "x", "reasoning": {"effort": "huge"}}, 400, "invalid_request_error",
     'invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", '
     'or "none")'),
    ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, 400, "invalid_request_error",
     "tool type 'web_search' is not supported: only function tools"),
])
def test_errors_in_openai_shape(demo_fake_server: RunningServer, fake_engine: FakeEngine, body: dict[str, Any],
                                status: int, kind: str, message: str) -> None:
    reply = post(demo_fake_server, body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == {"message": message, "type": kind, "param": None, "code": None}
    assert fake_engine.prompts == []


def test_sdk_raises_not_found(fake_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        fake_client.responses.create(model="missing", input="x")
    assert caught.value.status_code == 404 and "missing" in caught.value.message


def test_json_schema_text_format(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(['{"ok": true}'])
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = fake_client.responses.create(model=MODEL, input="x", text={
        "format": {"type": "json_schema", "name": "answer", "schema": schema}})
    assert json.loads(reply.output_text) == {"ok": True}
    assert reply.text and reply.text.format and reply.text.format.type == "json_schema"


def test_real_model_generates(demo_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="ollama", max_retries=0)
    reply = client.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=8, temperature=0)
    assert reply.output_text.strip() and reply.usage and 0 < reply.usage.output_tokens <= 8
    streamed = list(client.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=8,
                                            temperature=0, stream=True))
    assert streamed[-1].type == "response.completed"
    assert streamed[-1].response.output_text == reply.output_text  # greedy: the same words both ways


class _Failing(FakeModel):
    def generate(self, prompt: list[int], sampling: Sampling, **kwargs: Any) -> Iterator[str | Generated]:
        yield "Hel"
        raise SkyllamaError("engine fell over")


class _FailingEngine(FakeEngine):
    def load(self, spec: LoadSpec) -> FakeModel:
        return _Failing(spec, self)


def test_error_after_the_first_event_is_an_error_event(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "failing"), engine=_FailingEngine()) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="ollama", max_retries=0)
        events = list(client.responses.create(model=MODEL, input="x", stream=True))
    assert events[0].type == "response.created" and events[-2].type == "response.output_text.delta"
    last = events[-1]
    assert last.type == "error" and last.message == "engine fell over" and last.code == "api_error"
    assert last.sequence_number == len(events) - 1
