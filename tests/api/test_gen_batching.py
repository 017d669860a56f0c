"""Batched decoding: concurrent chats for one model share llama.cpp batches, answers unchanged.

Each test runs the same requests through a batched server (``num_parallel`` 4, the default
``SKYLLAMA_GEN_BATCHING``) at once, and compares every answer with the one the unbatched path
gives alone (a server with one slot: llama-cpp-python's high-level ``generate``, as before
batching). On CPU llama.cpp's batched logits match the single-sequence ones closely enough that
whole greedy and seeded answers are identical for SmolLM2; the tests compare them in full.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.multiseq import MultiSeqModel
from skyllama.engine.runner.remote import RemoteModel

MODEL = "smollm2:135m"
QUESTIONS = ["Why is the sky blue?", "Write a short poem about cats.", "Name three fruits and their colours.",
             "What is the capital of France? Explain."]


def chat_body(question: str, **options: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "stream": False,
            "options": {"num_ctx": 1024, "temperature": 0, "num_predict": 40, **options}}


def answer(url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}/api/chat", json=body, timeout=180)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def together(url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every body at once (one thread each) and return the answers in order."""
    results: list[Any] = [None] * len(bodies)
    gate = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        gate.wait()
        results[i] = answer(url, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert all(r is not None for r in results)
    return results


def loaded(server: RunningServer) -> list[Any]:
    scheduler = server.runtime.scheduler
    assert scheduler is not None
    return scheduler.loaded()


def shared_model(server: RunningServer) -> RemoteModel:
    runners = loaded(server)
    assert len(runners) == 1 and runners[0].shared
    model = runners[0].contexts[0]
    assert isinstance(model, RemoteModel)  # a batched MultiSeqModel in a runner process
    return model


@pytest.fixture(scope="module")
def folder(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_models(demo_models, tmp_path_factory.mktemp("genbatch"))


@pytest.fixture(scope="module")
def unbatched(folder: Path) -> Iterator[RunningServer]:
    with run_server(folder, num_parallel=1) as running:
        yield running


@pytest.fixture
def batched(folder: Path) -> Iterator[RunningServer]:
    with run_server(folder, num_parallel=4) as running:
        yield running


def test_concurrent_greedy_answers_equal_the_unbatched_ones(batched: RunningServer,
                                                            unbatched: RunningServer) -> None:
    bodies = [chat_body(q) for q in QUESTIONS]
    expected = [answer(unbatched.url, b) for b in bodies]
    got = together(batched.url, bodies)
    assert [g["message"]["content"] for g in got] == [e["message"]["content"] for e in expected]
    assert [g["eval_count"] for g in got] == [e["eval_count"] for e in expected]
    assert [g["done_reason"] for g in got] == [e["done_reason"] for e in expected]
    model = shared_model(batched)
    assert model.stats()["max_batch_seqs"] >= 3  # they really were decoded together
    assert all(e["message"]["content"] for e in expected)


def test_per_request_options_are_kept_within_one_batch(batched: RunningServer, unbatched: RunningServer) -> None:
    plain = answer(unbatched.url, chat_body(QUESTIONS[1], num_predict=60))["message"]["content"]
    words = plain.split()
    assert len(words) > 6
    stop = words[5]
    bodies = [
        chat_body(QUESTIONS[0], num_predict=7),
        chat_body(QUESTIONS[1], num_predict=60, stop=[stop]),
        chat_body(QUESTIONS[2], temperature=1.1, seed=7, top_k=60, top_p=0.95, num_predict=30),
        chat_body(QUESTIONS[3], temperature=0.7, seed=123, repeat_penalty=1.3, min_p=0.05, num_predict=30),
    ]
    expected = [answer(unbatched.url, b) for b in bodies]
    got = together(batched.url, bodies)
    assert got[0]["eval_count"] == 7 and got[0]["done_reason"] == "length"
    assert got[1]["done_reason"] == "stop" and stop not in got[1]["message"]["content"]
    assert plain.startswith(got[1]["message"]["content"].rstrip())
    for g, e in zip(got, expected, strict=True):
        assert g["message"]["content"] == e["message"]["content"]
        assert (g["eval_count"], g["done_reason"]) == (e["eval_count"], e["done_reason"])
    # the seeds matter: another seed gives another sampled answer
    other = answer(batched.url, {**bodies[2], "options": {**bodies[2]["options"], "seed": 8}})
    assert other["message"]["content"] != got[2]["message"]["content"]
    assert shared_model(batched).stats()["max_batch_seqs"] >= 3


def test_format_and_logprobs_in_a_batch(batched: RunningServer, unbatched: RunningServer) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    bodies = [
        {**chat_body("Describe a person as JSON.", num_predict=60), "format": schema},
        {**chat_body(QUESTIONS[0], num_predict=12), "logprobs": True, "top_logprobs": 3},
        chat_body(QUESTIONS[2], num_predict=30),
    ]
    expected = [answer(unbatched.url, b) for b in bodies]
    got = together(batched.url, bodies)
    person = json.loads(got[0]["message"]["content"])
    assert set(person) >= {"name", "age"} and isinstance(person["age"], int)
    assert len(got[1]["logprobs"]) == got[1]["eval_count"] == 12
    assert all(len(lp["top_logprobs"]) == 3 for lp in got[1]["logprobs"])
    for g, e in zip(got, expected, strict=True):
        assert g["message"]["content"] == e["message"]["content"]
    for g, e in zip(got[1]["logprobs"], expected[1]["logprobs"], strict=True):
        assert g["token"] == e["token"] and g["logprob"] == pytest.approx(e["logprob"], abs=1e-3)


def test_a_cancelled_request_does_not_disturb_its_batch_mates(batched: RunningServer,
                                                              unbatched: RunningServer) -> None:
    url = batched.url
    mates = [chat_body(q, num_predict=64) for q in QUESTIONS[:2]]
    expected = [answer(unbatched.url, b) for b in mates]
    long = {**chat_body("Write a very long story about a dragon.", num_predict=2000), "stream": True}
    cancelled: list[dict[str, Any]] = []
    disconnected: list[dict[str, Any]] = []
    started = threading.Event()

    def by_route() -> None:  # cancelled with DELETE /api/requests/{id}
        with httpx.stream("POST", f"{url}/api/chat", json=long, headers={"X-Request-Id": "batch-long"},
                          timeout=120) as r:
            for line in r.iter_lines():
                cancelled.append(json.loads(line))
                started.set()

    def by_disconnect() -> None:  # the client goes away after a few chunks
        with httpx.stream("POST", f"{url}/api/chat", json=long, timeout=120) as r:
            for line in r.iter_lines():
                disconnected.append(json.loads(line))
                if len(disconnected) >= 5:
                    break

    results: list[Any] = [None, None]

    def mate(i: int) -> None:
        results[i] = answer(url, mates[i])

    threads = [threading.Thread(target=by_route), threading.Thread(target=by_disconnect)]
    threads += [threading.Thread(target=mate, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert started.wait(60)
    time.sleep(0.3)
    r = httpx.delete(f"{url}/api/requests/batch-long")
    assert r.status_code == 200 and r.json()["cancelled"] == 1
    for t in threads:
        t.join(120)
    assert cancelled[-1]["done"] is True and cancelled[-1]["done_reason"] == "cancel"
    assert cancelled[-1]["eval_count"] < 2000 and len(disconnected) == 5
    for got, exp in zip(results, expected, strict=True):
        assert got["message"]["content"] == exp["message"]["content"]
        assert got["eval_count"] == exp["eval_count"]
    model = shared_model(batched)
    assert model.stats()["max_batch_seqs"] >= 3
    deadline = time.time() + 10
    while model.stats()["active"] and time.time() < deadline:  # the disconnected one leaves at its next step
        time.sleep(0.05)
    assert model.stats()["active"] == 0


def test_batching_can_be_turned_off(folder: Path) -> None:
    with run_server(folder, num_parallel=2, gen_batching=False) as running:
        got = together(running.url, [chat_body(q, num_predict=4) for q in QUESTIONS[:2]])
        assert all(g["eval_count"] == 4 for g in got)
        runners = loaded(running)
        assert len(runners) == 1 and not runners[0].shared and len(runners[0].contexts) == 2


def test_prompts_admitted_in_one_step_match_the_plain_engine(folder: Path) -> None:
    """Engine level, deterministic: four prompts wait while the decode thread is held, so they are
    all admitted at once (the case where prefilling them in one batch drifted)."""
    from skyllama.composition import build_runtime
    from skyllama.engine.base import Generated, LoadSpec, Sampling
    from skyllama.engine.llama import LlamaModel
    from skyllama.settings import Settings

    runtime = build_runtime(Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db"),
                            inference=False)
    path = str(runtime.catalog.model_path(runtime.catalog.get(MODEL, None)))
    runtime.close()
    spec = LoadSpec(path=path, n_ctx=1024)
    greedy = Sampling(temperature=0, num_predict=48)

    def tokens(model: Any, question: str) -> list[int]:
        prompt = model.tokenize(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
        return [item for item in model.generate(prompt, greedy) if isinstance(item, Generated)][0].tokens

    plain = LlamaModel(spec)
    expected = [tokens(plain, q) for q in QUESTIONS]
    plain.close()
    model = MultiSeqModel(spec, 4)
    try:
        got: list[Any] = [None] * 4

        def one(i: int) -> None:
            got[i] = tokens(model, QUESTIONS[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        with model._cond:  # no free sequence id: the decode thread cannot admit anyone until all four wait
            free_ids, model._free_ids = model._free_ids, []
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with model._cond:
                if len(model._waiting) == 4:
                    model._free_ids = free_ids
                    model._cond.notify_all()
                    break
            time.sleep(0.01)
        for t in threads:
            t.join(120)
        assert got == expected
        assert model.max_batch_seqs == 4
    finally:
        model.close()
