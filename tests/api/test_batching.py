"""Embed micro-batching: concurrent ``/api/embed`` requests share engine calls, answers unchanged.

Real-model tests use the demo ``all-minilm`` (and SmolLM2, mean pooled) through a real server;
the cancellation and failure tests drive :class:`EmbedBatcher` with the fake engine.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from serving import RunningServer
from skyllama.engine.base import LoadSpec
from skyllama.engine.fake import FakeEngine
from skyllama.errors import BadRequest
from skyllama.keep_alive import KeepAlive
from skyllama.services.inference.batching import EmbedBatcher

MINILM = "all-minilm"
SMOLLM = "smollm2:135m"
TEXTS = [f"{verb} {thing}, case {i}." for i, (verb, thing) in enumerate(
    [("Why is", "the sky blue"), ("Tell me about", "llamas"), ("I like", "green grass"),
     ("Explain", "quantum physics"), ("A story about", "a red bicycle"), ("Notes on", "coffee")] * 4)]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def _concurrent(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        return list(await asyncio.gather(*(client.post("/api/embed", json=b) for b in bodies)))


@pytest.mark.parametrize("model", [MINILM, SMOLLM])
def test_concurrent_requests_are_coalesced_and_match_single_requests(demo_server: RunningServer,
                                                                     model: str) -> None:
    options = {"num_ctx": 256}
    alone = [httpx.post(f"{demo_server.url}/api/embed", json={"model": model, "input": [t], "options": options},
                        timeout=120).json()["embeddings"][0] for t in TEXTS]
    scheduler = demo_server.runtime.scheduler
    assert scheduler is not None
    batcher = scheduler.embed_batcher
    before = batcher.batches_run
    bodies = [{"model": model, "input": TEXTS[i : i + 3], "options": options} for i in range(0, len(TEXTS), 3)]
    responses = asyncio.run(_concurrent(demo_server.url, bodies))
    assert all(r.status_code == 200 for r in responses)
    batched = [v for r in responses for v in r.json()["embeddings"]]
    assert min(cosine(a, b) for a, b in zip(alone, batched, strict=True)) >= 0.99999
    assert batcher.batches_run - before < len(bodies)  # at least two requests shared an engine call
    counts = [r.json()["prompt_eval_count"] for r in responses]
    assert all(c > 0 for c in counts) and len(set(counts)) >= 1


def test_per_request_truncate_and_dimensions_in_one_batch(demo_server: RunningServer) -> None:
    long = " ".join(["word"] * 400)
    options = {"num_ctx": 64}
    bodies = [
        {"model": MINILM, "input": [long, "short one"], "options": options},  # truncated
        {"model": MINILM, "input": [long], "truncate": False, "options": options},  # 400
        {"model": MINILM, "input": ["short one"], "dimensions": 16, "options": options},
        {"model": MINILM, "input": ["short one"], "options": options},
    ]
    truncated, refused, cut, full = asyncio.run(_concurrent(demo_server.url, bodies))
    assert refused.status_code == 400 and refused.json() == {"error": "the input length exceeds the context length"}
    assert truncated.status_code == 200 and len(truncated.json()["embeddings"]) == 2
    assert truncated.json()["prompt_eval_count"] > 64
    vector = cut.json()["embeddings"][0]
    assert len(vector) == 16 and abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-4
    assert cosine(truncated.json()["embeddings"][1], full.json()["embeddings"][0]) >= 0.99999
    assert cosine(vector, full.json()["embeddings"][0][:16]) >= 0.99999


# -- the batcher alone, with the fake engine --------------------------------------------------------

class _Scheduler:
    """Just enough scheduler for the batcher: one fake context, acquired one at a time."""

    def __init__(self, engine: FakeEngine) -> None:
        self.context = engine.load(LoadSpec(path="fake", n_ctx=32))
        self.lock = asyncio.Lock()
        self.acquired = 0

    @asynccontextmanager
    async def acquire(self, model: Any, options: dict[str, Any],
                      keep_alive: KeepAlive | None = None) -> AsyncIterator[Any]:
        async with self.lock:
            self.acquired += 1
            yield SimpleNamespace(context=self.context, load_duration=0)


MODEL = SimpleNamespace(digest=SimpleNamespace(hex="0" * 64))


def _sync(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test body on a fresh event loop (the project has no async pytest plugin)."""
    @functools.wraps(fn)
    def run() -> None:
        asyncio.run(asyncio.wait_for(fn(), 20))
    return run


@_sync
async def test_a_cancelled_request_does_not_disturb_its_batch_mates() -> None:
    engine = FakeEngine()
    sched = _Scheduler(engine)
    batcher = EmbedBatcher(sched.acquire, wait_ms=20)
    tasks = [asyncio.create_task(batcher.embed(MODEL, {}, None, [f"text {i}"], truncate=True)) for i in range(4)]
    await asyncio.sleep(0.005)
    tasks[1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert [len(r[0]) for r in results if not isinstance(r, BaseException)] == [1, 1, 1]
    assert engine.embed_calls == [["text 0", "text 2", "text 3"]]  # one call, without the cancelled one


@_sync
async def test_a_cancelled_request_mid_batch_leaves_the_others_their_answers() -> None:
    engine = FakeEngine()
    sched = _Scheduler(engine)
    batcher = EmbedBatcher(sched.acquire, wait_ms=0)
    await sched.lock.acquire()  # the batch waits for the slot, as behind a busy runner
    tasks = [asyncio.create_task(batcher.embed(MODEL, {}, None, ["abc" * i], truncate=True)) for i in (1, 2, 3)]
    await asyncio.sleep(0.01)
    sched.lock.release()
    await asyncio.sleep(0)
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert [r[1] for r in results[1:]] == [6, 9]  # type: ignore[index]
    assert sched.acquired == 1


@_sync
async def test_one_failing_request_gets_its_error_and_the_others_their_vectors() -> None:
    engine = FakeEngine()
    sched = _Scheduler(engine)
    batcher = EmbedBatcher(sched.acquire, wait_ms=5)
    ok = asyncio.create_task(batcher.embed(MODEL, {}, None, ["x" * 100, "y"], truncate=True))
    bad = asyncio.create_task(batcher.embed(MODEL, {}, None, ["x" * 100], truncate=False))
    vectors, count, _load = await ok
    assert len(vectors) == 2 and count == 32 + 1
    with pytest.raises(BadRequest):
        await bad
    assert len(engine.embed_calls) == 3  # the shared call, then each request alone


@_sync
async def test_different_options_are_different_batches() -> None:
    engine = FakeEngine()
    sched = _Scheduler(engine)
    batcher = EmbedBatcher(sched.acquire, wait_ms=5)
    await asyncio.gather(batcher.embed(MODEL, {"num_ctx": 32}, None, ["a"], truncate=True),
                         batcher.embed(MODEL, {"num_ctx": 64}, None, ["b"], truncate=True),
                         batcher.embed(MODEL, {"num_ctx": 32}, None, ["c"], truncate=True))
    assert sorted(engine.embed_calls) == [["a", "c"], ["b"]]
