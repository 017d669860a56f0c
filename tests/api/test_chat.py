"""``/api/chat`` through a real server: SmolLM2 for generation, a fake engine for exact tool-call output."""

from __future__ import annotations

import json

import httpx
import jsonschema
import ollama
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 3, "num_predict": 12, "num_ctx": 1024}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def client(demo_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=demo_server.url)


def test_chat_streamed_and_not(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    assert whole.done and whole.message.role == "assistant" and whole.message.content.strip()
    assert whole.eval_count and whole.prompt_eval_count and whole.eval_duration
    chunks = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert "".join(c.message.content for c in chunks) == whole.message.content


def test_history_and_system_reach_the_prompt(client: ollama.Client) -> None:
    short = client.chat(model=MODEL, messages=[{"role": "user", "content": "And Mie?"}], options=GREEDY)
    history = [{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "Why is the sky blue?"},
               {"role": "assistant", "content": "Rayleigh scattering."},
               {"role": "user", "content": "And Mie?"}]
    long = client.chat(model=MODEL, messages=history, options=GREEDY)
    assert long.prompt_eval_count > short.prompt_eval_count + 10


def test_chat_format_schema_validates(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"]}
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "Weather in Rome as JSON."}],
                    format=schema, options={**GREEDY, "num_predict": 40})
    jsonschema.validate(json.loads(r.message.content), schema)


def test_tools_render_with_the_real_model(client: ollama.Client) -> None:
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                    tools=[WEATHER], options=GREEDY)
    plain = client.chat(model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                        options=GREEDY)
    assert r.prompt_eval_count > plain.prompt_eval_count + 30  # the tool list is in the prompt
    for call in r.message.tool_calls or []:  # SmolLM2-135M rarely calls; when it does, it parses
        assert isinstance(call.function.arguments, dict)


TOOL_OUTPUT = ['<tool', '_call>\n{"name": "get_', 'weather", "arguments": ', '{"city": "Paris"}}\n</tool_call>']


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_are_parsed_from_the_output(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                              stream: bool) -> None:
    fake = fake_engine
    fake.enqueue(TOOL_OUTPUT)
    client = ollama.Client(host=demo_fake_server.url)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(client.chat(model=MODEL, messages=messages, tools=[WEATHER], stream=True))
        calls = [c for chunk in chunks for c in chunk.message.tool_calls or []]
        content = "".join(chunk.message.content for chunk in chunks)
    else:
        r = client.chat(model=MODEL, messages=messages, tools=[WEATHER])
        calls, content = r.message.tool_calls or [], r.message.content
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather" and calls[0].function.arguments == {"city": "Paris"}
    assert "<tool_call>" not in content
    assert "get_weather" in fake.prompts[0] and "<tools>" in fake.prompts[0]


def test_tool_results_go_back_into_the_prompt(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    fake = fake_engine
    fake.enqueue(["It is sunny."])
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "content": "22 degrees and sunny", "tool_name": "get_weather"}]
    r = ollama.Client(host=demo_fake_server.url).chat(model=MODEL, messages=messages, tools=[WEATHER])
    assert r.message.content == "It is sunny."
    assert "22 degrees and sunny" in fake.prompts[0] and '"city": "Paris"' in fake.prompts[0].replace('":"', '": "')


def test_empty_messages_load_and_unload(client: ollama.Client) -> None:
    r = client.chat(model=MODEL, messages=[])
    assert r.done_reason == "load" and r.message.content == ""
    assert [m.model for m in client.ps().models] == [MODEL]
    assert client.chat(model=MODEL, messages=[], keep_alive=0).done_reason == "unload"
    assert client.ps().models == []


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid role"),
    ({"messages": [{"role": "user", "content": "hi", "images": ["%%%"]}]}, 400, "base64"),
    ({"messages": [{"role": "user", "content": "hi"}], "options": {"top_k": "many"}}, 400, "top_k"),
    ({"messages": [{"role": "user", "content": "hi"}], "format": {"type": "nope"}}, 400, "JSON schema"),
    ({"model": "ghost", "messages": [{"role": "user", "content": "hi"}]}, 404, "model 'ghost' not found"),
])
def test_bad_chat_requests(demo_server: RunningServer, body: dict, status: int, message: str) -> None:
    r = httpx.post(f"{demo_server.url}/api/chat", json={"model": MODEL, **body}, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
