"""Ecosystem clients, unmodified, against a real server: LangChain's ``ChatOllama`` and
``OllamaEmbeddings`` (langchain-ollama, over ``/api/*``) and the ``openai`` client's basics."""

from __future__ import annotations

import math

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_ollama import ChatOllama, OllamaEmbeddings

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
EMBED = "all-minilm"


def chat(server: RunningServer, **kwargs: object) -> ChatOllama:
    return ChatOllama(model=MODEL, base_url=server.url, temperature=0, seed=1, num_predict=8, **kwargs)


def test_chat_ollama_invoke_and_stream(demo_server: RunningServer) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Say hello.")]
    whole = chat(demo_server).invoke(messages)
    assert isinstance(whole, AIMessage) and isinstance(whole.content, str) and whole.content
    assert whole.usage_metadata and whole.usage_metadata["output_tokens"] > 0
    assert whole.response_metadata["model"] == MODEL and whole.response_metadata["done_reason"] in ("stop", "length")
    chunks = list(chat(demo_server).stream(messages))
    assert len(chunks) > 1 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == whole.content


def test_chat_ollama_tool_calls(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    fake = fake_engine
    fake.enqueue(['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'])

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return "sunny"

    reply = chat(demo_fake_server).bind_tools([get_weather]).invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_ollama_embeddings(demo_server: RunningServer) -> None:
    names = {m["name"] for m in demo_server.runtime.catalog.list_models(None)}
    model = EMBED if f"{EMBED}:latest" in names else MODEL
    embeddings = OllamaEmbeddings(model=model, base_url=demo_server.url)
    docs = embeddings.embed_documents(["The cat sat on the mat.", "Stock markets fell sharply."])
    query = embeddings.embed_query("A kitten sleeps.")
    assert len(docs) == 2 and len({len(v) for v in [*docs, query]}) == 1
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in [*docs, query])

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    if model == EMBED:  # a real sentence-embedding model ranks the cat closer than the markets
        assert cosine(query, docs[0]) > cosine(query, docs[1])


def test_openai_client_unmodified(demo_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.choices[0].message.content is not None
    assert MODEL in [m.id for m in client.models.list()]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
