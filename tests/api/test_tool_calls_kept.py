"""Tool calls are never lost (issue 20): a tool-call block that names a tool not offered, or that
does not parse, stays in ``content``; ``tools`` on a model whose template has none is Ollama's 400.
Through a real server, with the official client and LangChain's ``with_structured_output``."""

from __future__ import annotations

import httpx
import ollama
import pytest
from langchain_ollama import ChatOllama
from pydantic import BaseModel

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


def reply(client: ollama.Client, stream: bool) -> tuple[str, list[ollama.Message.ToolCall]]:
    if stream:
        chunks = list(client.chat(model=MODEL, messages=ASK, tools=[WEATHER], stream=True))
        assert chunks[-1].done
        return "".join(c.message.content for c in chunks), [t for c in chunks for t in c.message.tool_calls or []]
    r = client.chat(model=MODEL, messages=ASK, tools=[WEATHER])
    return r.message.content, list(r.message.tool_calls or [])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("output", [
    ['<tool_call>\n{"name": "search_web", ', '"arguments": {"q": "get_weather Paris"}}\n</tool_call>'],  # not offered
    ['<tool_call>\n{"name": "get_weather", ', '"arguments": {"city": "Paris",}}\n</tool_call>'],  # does not parse
    ['<tool', '_call>\n{"name": "get_weather", "arguments": {"ci'],  # cut off (num_predict)
], ids=["not offered", "does not parse", "cut off"])
def test_a_block_that_is_no_call_stays_content(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                               output: list[str], stream: bool) -> None:
    fake_engine.enqueue(output)
    content, calls = reply(ollama.Client(host=demo_fake_server.url), stream)
    assert calls == []
    assert content == "".join(output)


def test_text_around_a_good_call_is_kept(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["Let me look. ", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',
                         "</tool_call>"])
    content, calls = reply(ollama.Client(host=demo_fake_server.url), False)
    assert content == "Let me look. "
    assert [(c.function.name, c.function.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]


def test_langchain_structured_output(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    """``with_structured_output(method="function_calling")``: a call parses to the schema; a block
    naming another tool reaches LangChain as content (it was an empty message, with nothing to see)."""
    llm = ChatOllama(model=MODEL, base_url=demo_fake_server.url, temperature=0)
    structured = llm.with_structured_output(Person, method="function_calling", include_raw=True)
    fake_engine.enqueue(['<tool_call>{"name": "Person", "arguments": {"name": "Alice", "age": 30}}</tool_call>'])
    out = structured.invoke("Alice is 30.")
    assert out["parsed"] == Person(name="Alice", age=30)
    assert "Person" in fake_engine.prompts[-1]  # the schema went out as the one tool
    bad = '<tool_call>{"name": "person_info", "arguments": {"name": "Alice", "age": 30}}</tool_call>'
    fake_engine.enqueue([bad])
    out = structured.invoke("Alice is 30.")
    assert out["parsed"] is None and out["raw"].tool_calls == []
    assert out["raw"].content == bad


def test_langchain_structured_output_with_the_real_model(demo_server: RunningServer) -> None:
    """SmolLM2-135M rarely writes a well-formed call: whatever it writes reaches the client, as a
    call or as content, never as an empty message."""
    llm = ChatOllama(model=MODEL, base_url=demo_server.url, temperature=0, seed=3, num_predict=48, num_ctx=1024)
    out = llm.with_structured_output(Person, method="function_calling", include_raw=True).invoke(
        "Extract the person: Alice is 30 years old.")
    raw = out["raw"]
    assert raw.content.strip() or raw.tool_calls
    assert raw.response_metadata["eval_count"] > 0
    if raw.tool_calls:
        assert out["parsed"] is not None or out["parsing_error"] is not None


def test_tools_on_a_model_without_tools_are_refused(demo_fake_server: RunningServer) -> None:
    url = demo_fake_server.url
    r = httpx.post(f"{url}/api/create", json={"model": "plain", "from": MODEL, "template": "{{ .Prompt }}",
                                              "stream": False}, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/api/chat", json={"model": "plain", "messages": ASK, "tools": [WEATHER]})
    assert (r.status_code, r.json()) == (400, {"error": "registry.ollama.ai/library/plain:latest does not support tools"})
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=url).chat(model="plain", messages=ASK, tools=[WEATHER])
    assert err.value.status_code == 400 and "does not support tools" in err.value.error
    r = httpx.post(f"{url}/api/chat", json={"model": "plain", "messages": ASK, "stream": False})
    assert r.status_code == 200  # without tools it answers
