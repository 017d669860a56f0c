"""OpenAI ``/v1`` fields beyond the basics (issue 20 item 4), through the real ``openai`` client:
``logprobs``/``top_logprobs`` on chat completions (Ollama's ``ChoiceLogprobs``), and token-array
``input`` on ``/v1/embeddings`` (OpenAI's form, which LangChain's ``OpenAIEmbeddings`` sends; Ollama
answers ``invalid input type``, skyllama embeds the ids)."""

from __future__ import annotations

import httpx
import openai
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def fake_client(demo_fake_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_fake_server.url}/v1", api_key="ollama", max_retries=0)


def test_chat_completion_logprobs(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["Hel", "lo"])
    reply = fake_client.chat.completions.create(model=MODEL, messages=HELLO, logprobs=True, top_logprobs=2)
    content = reply.choices[0].logprobs and reply.choices[0].logprobs.content
    assert content and [lp.token for lp in content] == ["Hel", "lo"]
    assert content[0].bytes == list(b"Hel") and content[0].logprob == 0.0
    assert [t.token for t in content[0].top_logprobs] == ["Hel", "alt0"]
    fake_engine.enqueue(["Hel", "lo"])
    plain = fake_client.chat.completions.create(model=MODEL, messages=HELLO)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == "Hello"


def test_streamed_chat_completion_logprobs(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(["a", "b", "c"])
    chunks = list(fake_client.chat.completions.create(model=MODEL, messages=HELLO, logprobs=True, stream=True))
    tokens = [lp.token for c in chunks for ch in c.choices if ch.logprobs and ch.logprobs.content
              for lp in ch.logprobs.content]
    assert tokens == ["a", "b", "c"]
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "abc"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_top_logprobs_out_of_range(demo_fake_server: RunningServer) -> None:
    reply = httpx.post(f"{demo_fake_server.url}/v1/chat/completions",
                       json={"model": MODEL, "messages": HELLO, "logprobs": True, "top_logprobs": 21})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "top_logprobs must be between 0 and 20"


def test_token_array_embeddings(fake_client: openai.OpenAI, fake_engine: FakeEngine) -> None:
    # the fake engine's ids are code points; the ids are embedded as the text they spell
    text = fake_client.embeddings.create(model=MODEL, input="Hi!").data[0].embedding
    one = fake_client.embeddings.create(model=MODEL, input=[72, 105, 33])
    assert [d.embedding for d in one.data] == [text]
    many = fake_client.embeddings.create(model=MODEL, input=[[72, 105, 33], [79, 75]])
    assert len(many.data) == 2 and many.data[0].embedding == text and many.data[1].embedding != text
    assert fake_engine.embed_calls[-1] == ["Hi!", "OK"]
    assert many.usage.prompt_tokens == 5


@pytest.mark.parametrize(("value", "message"), [
    ([[1, 2], []], "invalid input"),
    ([[1, "a"]], "invalid input type"),
    ([-1], "input token -1 is outside the model's vocabulary (ids are between 0 and 49151)"),
    ([[3], [49152]], "input token 49152 is outside the model's vocabulary (ids are between 0 and 49151)"),
])
def test_bad_token_arrays(demo_fake_server: RunningServer, fake_engine: FakeEngine, value: object,
                          message: str) -> None:
    reply = httpx.post(f"{demo_fake_server.url}/v1/embeddings", json={"model": MODEL, "input": value})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == {"message": message, "type": "invalid_request_error", "param": None,
                                     "code": None}
    assert fake_engine.embed_calls == []
