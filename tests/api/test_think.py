"""``think`` and the ``thinking`` output: a model whose template has Ollama's thinking structure."""

from __future__ import annotations

import httpx
import ollama
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

THINKING_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n{{ if .Think }}<think>{{ end }}"
)


def make_thinker(server: RunningServer) -> ollama.Client:
    client = ollama.Client(host=server.url)
    client.create(model="thinker", from_="smollm2:135m", template=THINKING_TEMPLATE)
    return client


def test_think_on_a_model_without_thinking_is_400(demo_server: RunningServer) -> None:
    client = ollama.Client(host=demo_server.url)
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("smollm2:135m", messages=[{"role": "user", "content": "hi"}], think=True)
    assert err.value.status_code == 400
    assert "does not support thinking" in err.value.error
    bad = httpx.post(f"{demo_server.url}/api/generate", json={"model": "smollm2:135m", "prompt": "x", "think": "huge"})
    assert bad.status_code == 400 and "invalid think value" in bad.json()["error"]


def test_thinking_is_split_from_content(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    engine = fake_engine
    client = make_thinker(demo_fake_server)
    assert "thinking" in client.show("thinker").capabilities
    engine.enqueue(["<th", "ink>Let me", " see.</thi", "nk>\n\nHello", " there"])
    reply = client.chat("thinker", messages=[{"role": "user", "content": "hi"}], think=True)
    assert reply.message.thinking == "Let me see."
    assert reply.message.content == "Hello there"
    engine.enqueue(["<think>", "hmm", "</think>", "Yes"])
    chunks = list(client.generate("thinker", "q", think="low", stream=True))
    assert "".join(c.thinking or "" for c in chunks) == "hmm"
    assert "".join(c.response for c in chunks) == "Yes"
    engine.enqueue(["<think>a</think>b"])
    plain = client.chat("thinker", messages=[{"role": "user", "content": "hi"}], think=False)
    assert plain.message.content == "<think>a</think>b" and not plain.message.thinking
    assert "<think>" not in engine.prompts[-1].split("assistant\n")[-1]


def test_real_model_with_a_thinking_template_answers(demo_server: RunningServer) -> None:
    client = make_thinker(demo_server)
    reply = client.chat("thinker", messages=[{"role": "user", "content": "hi"}], think=True,
                        options={"num_predict": 8, "num_ctx": 512, "temperature": 0})
    assert reply.done and reply.eval_count and reply.eval_count <= 8
