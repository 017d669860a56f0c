"""The prompt (KV) cache: a prompt that shares a prefix with what a runner's context holds
evaluates only the rest, and the answers equal the uncached path's, token for token: across the
turns of a growing chat, with a seed, after a context shift, after a cancelled request, with two
conversations interleaved on one slot, on the batched engine's slots, and with embeddings
(which the cache must not change)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import clone_models, run_server
from skyllama.demo import smollm2_gguf
from skyllama.engine.base import Generated, LoadSpec, Sampling
from skyllama.engine.llama import LlamaModel
from skyllama.engine.runner.pool import RunnerPool
from skyllama.engine.runner.remote import RemoteModel

SPEC = LoadSpec(path=str(smollm2_gguf()), n_ctx=1024, n_threads=2)
SYSTEM = "<|im_start|>system\nYou are a helpful assistant. Answer in one or two sentences.<|im_end|>\n"


def user(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def answer(model: Any, prompt: list[int], sampling: Sampling | None = None,
           cancel: threading.Event | None = None) -> tuple[str, Generated]:
    items = list(model.generate(prompt, sampling or Sampling(temperature=0, num_predict=32), cancel=cancel))
    return "".join(i for i in items if isinstance(i, str)), items[-1]


@pytest.fixture(scope="module")
def pool() -> Iterator[RunnerPool]:
    runners = RunnerPool(spares=0)
    yield runners
    runners.close()


@pytest.fixture(scope="module")
def reference() -> Iterator[LlamaModel]:
    """llama-cpp-python in this process, every pass from a clean cache: the uncached path."""
    model = LlamaModel(SPEC)
    yield model
    model.close()


@pytest.fixture
def cached(pool: RunnerPool) -> Iterator[RemoteModel]:
    model = pool.load(SPEC)
    yield model
    model.close()


def test_a_growing_chat_evaluates_only_what_is_new(cached: RemoteModel, reference: LlamaModel) -> None:
    history, previous = SYSTEM, 0
    for turn, question in enumerate(["Why is the sky blue?", "And the sea?", "Name a blue fruit.",
                                     "Summarise in three words."]):
        history += user(question)
        prompt = cached.tokenize(history)
        before = cached.stats()["reused_tokens"]
        text, done = answer(cached, prompt)
        expected, _ = answer(reference, prompt)
        assert text == expected, turn
        reused = cached.stats()["reused_tokens"] - before
        # the previous turn's prompt and its answer (evaluated into the cache while idle) were reused
        assert reused >= previous, (turn, reused, previous)
        assert done.prompt_eval_count == len(prompt)  # Ollama counts the whole prompt, cached or not
        history += text + "<|im_end|>\n"
        previous = len(prompt) + done.eval_count - 2  # the answer's last tokens may tokenize otherwise


def test_seeded_sampling_with_the_cache_equals_the_uncached_path(cached: RemoteModel,
                                                                 reference: LlamaModel) -> None:
    seeded = Sampling(temperature=0.9, top_k=40, top_p=0.9, seed=1234, num_predict=24)
    prompt = cached.tokenize(SYSTEM + user("Invent a name for a cat."))
    first, _ = answer(cached, prompt, seeded)
    again, _ = answer(cached, prompt, seeded)  # the whole prompt is cached now
    expected, _ = answer(reference, prompt, seeded)
    assert first == again == expected


def test_two_conversations_interleaved_on_one_slot(cached: RemoteModel, reference: LlamaModel) -> None:
    a, b = SYSTEM + user("What is a comet?"), SYSTEM + user("What is a volcano?")
    for _ in range(2):
        for name in ("a", "b"):
            history = a if name == "a" else b
            prompt = cached.tokenize(history)
            text, _ = answer(cached, prompt)
            assert text == answer(reference, prompt)[0]
            history += text + "<|im_end|>\n" + user("Tell me more.")
            a, b = (history, b) if name == "a" else (a, history)


def test_after_a_cancelled_request(cached: RemoteModel, reference: LlamaModel) -> None:
    long = cached.tokenize(SYSTEM + user("Count slowly: " + "one two three four five " * 120))
    cancel = threading.Event()
    result: list[Generated] = []
    thread = threading.Thread(target=lambda: result.append(answer(cached, long, Sampling(
        temperature=0, num_predict=200), cancel)[1]))
    thread.start()
    time.sleep(0.2)  # inside the prompt's evaluation
    cancel.set()
    thread.join(30)
    assert result and result[0].eval_count < 200
    prompt = cached.tokenize(SYSTEM + user("Count slowly: one two three."))
    assert answer(cached, prompt)[0] == answer(reference, prompt)[0]


def test_after_a_context_shift(pool: RunnerPool) -> None:
    """A generation that shifts its context (num_ctx 256), then a prompt sharing its start:
    the same answer as a runner that never saw the first request."""
    spec = LoadSpec(path=str(smollm2_gguf()), n_ctx=256, n_threads=2)
    warm, cold = pool.load(spec), pool.load(spec)
    try:
        story = warm.tokenize(SYSTEM + user("Write a very long story about a dragon."))
        _text, done = answer(warm, story, Sampling(temperature=0, num_predict=400, shift=True))
        assert done.eval_count == 400  # it went past 256 cells: the context shifted
        prompt = warm.tokenize(SYSTEM + user("Write a very long poem about a dragon."))
        assert answer(warm, prompt)[0] == answer(cold, prompt)[0]
        assert warm.stats()["reused_tokens"] > 0
    finally:
        warm.close()
        cold.close()


def test_the_batched_engine_gives_each_conversation_its_own_slot(pool: RunnerPool, reference: LlamaModel) -> None:
    model = pool.load_batched(SPEC, 3)
    try:
        histories = [SYSTEM + user(q) for q in ("What is rain?", "What is snow?", "What is hail?")]
        for _turn in range(2):
            for i, history in enumerate(histories):
                prompt = model.tokenize(history)
                before = model.stats()["reused_tokens"]
                text, _ = answer(model, prompt)
                assert text == answer(reference, prompt)[0]
                if _turn:  # each conversation found its own history in its own slot
                    assert model.stats()["reused_tokens"] - before >= len(model.tokenize(history)) // 2
                histories[i] = history + text + "<|im_end|>\n" + user("Why?")
    finally:
        model.close()


def test_embeddings_are_unchanged_by_the_cache(cached: RemoteModel) -> None:
    texts = ["The sky is blue.", "Dragons breathe fire."]
    before, _ = cached.embed_counted(texts, normalize=True)
    answer(cached, cached.tokenize(SYSTEM + user("Why is the sky blue?")))
    after, _ = cached.embed_counted(texts, normalize=True)
    assert before == after


def test_a_second_conversation_reuses_a_shared_tool_list(demo_models: Path, tmp_path: Path) -> None:
    """Over HTTP: two chats that share a long system prompt (a tool list, as Open WebUI sends):
    the second evaluates only its own part, and answers as a server without the first would."""
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": f"Does thing number {i}.",
                                               "parameters": {"type": "object", "properties": {
                                                   "x": {"type": "string", "description": "An argument."}}}}}
             for i in range(40)]

    def chat(url: str, question: str) -> dict[str, Any]:
        r = httpx.post(f"{url}/api/chat", timeout=300, json={
            "model": "smollm2:135m", "stream": False, "tools": tools,
            "messages": [{"role": "user", "content": question}],
            "options": {"temperature": 0, "num_predict": 16, "num_ctx": 4096}})
        assert r.status_code == 200, r.text
        return dict(r.json())

    with run_server(clone_models(demo_models, tmp_path / "a")) as server:
        first = chat(server.url, "Hi there.")
        second = chat(server.url, "What can you do?")
        scheduler = server.runtime.scheduler
        assert scheduler is not None
        (runner,) = scheduler.loaded()
        reused = runner.contexts[0].stats()["reused_tokens"]
    assert reused > 0.8 * first["prompt_eval_count"]
    assert second["prompt_eval_duration"] < 0.5 * first["prompt_eval_duration"]
    with run_server(clone_models(demo_models, tmp_path / "b")) as fresh:
        assert chat(fresh.url, "What can you do?")["message"] == second["message"]


def test_json_lines_keep_ollamas_prompt_eval_count_on_a_cache_hit(demo_server: Any) -> None:
    body = {"model": "smollm2:135m", "prompt": "Why is the sky blue?", "stream": False,
            "options": {"temperature": 0, "num_predict": 4}}
    one = httpx.post(f"{demo_server.url}/api/generate", json=body, timeout=120).json()
    two = httpx.post(f"{demo_server.url}/api/generate", json=body, timeout=120).json()
    assert one["prompt_eval_count"] == two["prompt_eval_count"] > 0
    assert one["response"] == two["response"]
    assert json.dumps(two["context"]) == json.dumps(one["context"])
