"""Micro-batching for ``/api/embed``: concurrent requests for one runner share engine calls.

A request joins the *open* batch for its key (model digest, load options, ``keep_alive``), or
opens one. An open batch waits ``SKYLLAMA_BATCH_WAIT_MS`` for company, then for a slot of the
runner, and takes everyone who joined until the slot is its own: under load, the requests that
arrive while one batch computes become the next batch. All texts go to the engine in one call
(llama.cpp packs them into shared decodes), and each request gets its own vectors and token count
back, so ``dimensions`` and metering stay per request.

- ``truncate``: a batch where some request has ``truncate: false`` runs without truncation; if the
  engine rejects it (one input too long), every request runs alone, so only the offender fails.
- A cancelled request (client gone) only drops its future: the batch runs on in its own task for
  its batch-mates, and a request cancelled before the batch starts is left out of it.
- Vectors do not depend on batch-mates: each text is its own llama.cpp sequence, pooled alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...engine.base import EngineModel
from ...keep_alive import KeepAlive

Vectors = list[list[float]]


@dataclass(eq=False)
class _Request:
    texts: list[str]
    truncate: bool
    future: asyncio.Future[tuple[Vectors, int, int]]


@dataclass(eq=False)
class _Batch:
    requests: list[_Request] = field(default_factory=list)
    n_texts: int = 0
    open: bool = True


class Acquire(Protocol):
    """The scheduler's ``acquire``: one slot of a model's runner for the block."""

    def __call__(self, model: Any, options: dict[str, Any],
                 keep_alive: KeepAlive | None = None) -> AbstractAsyncContextManager[Any]: ...


class EmbedBatcher:
    """Coalesces concurrent embed requests per runner key (see the module docstring)."""

    def __init__(self, acquire: Acquire, *, wait_ms: float = 2.0, max_inputs: int = 2048) -> None:
        self.acquire = acquire
        self.wait = max(wait_ms, 0.0) / 1000
        self.max_inputs = max(max_inputs, 1)
        self._open: dict[tuple[Any, ...], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_run = 0  # engine calls made for batches (tests and benchmarks read it)

    async def embed(self, model: Any, options: dict[str, Any], keep_alive: KeepAlive | None,
                    texts: list[str], *, truncate: bool) -> tuple[Vectors, int, int]:
        """Normalised vectors for ``texts``, their token count, and the batch's load time (ns)."""
        key = (model.digest.hex, json.dumps(options, sort_keys=True, default=str), keep_alive)
        batch = self._open.get(key)
        if batch is None or not batch.open or batch.n_texts + len(texts) > self.max_inputs:
            batch = _Batch()
            self._open[key] = batch
            task = asyncio.get_running_loop().create_task(self._run(key, batch, model, options, keep_alive))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        request = _Request(texts, truncate, asyncio.get_running_loop().create_future())
        batch.requests.append(request)
        batch.n_texts += len(texts)
        return await request.future

    def _close(self, key: tuple[Any, ...], batch: _Batch) -> list[_Request]:
        batch.open = False
        if self._open.get(key) is batch:
            del self._open[key]
        return [r for r in batch.requests if not r.future.done()]

    async def _run(self, key: tuple[Any, ...], batch: _Batch, model: Any, options: dict[str, Any],
                   keep_alive: KeepAlive | None) -> None:
        started = time.perf_counter_ns()
        try:
            if self.wait:
                await asyncio.sleep(self.wait)
            async with self.acquire(model, options, keep_alive) as lease:
                requests = self._close(key, batch)
                if not requests:
                    return
                load = time.perf_counter_ns() - started
                results = await asyncio.to_thread(_compute, lease.context, requests)
                self.batches_run += 1
        except BaseException as e:  # noqa: BLE001 - every request of the batch gets the error
            for request in self._close(key, batch):
                request.future.set_exception(e if isinstance(e, Exception) else RuntimeError("batch cancelled"))
            if not isinstance(e, Exception):
                raise
            return
        for request, result in zip(requests, results, strict=True):
            if request.future.done():
                continue
            if isinstance(result, Exception):
                request.future.set_exception(result)
            else:
                request.future.set_result((result[0], result[1], load))

    async def close(self) -> None:
        """Wait for batches in flight (server shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _embed(context: EngineModel, texts: list[str], truncate: bool) -> tuple[Vectors, list[int]]:
    counted = getattr(context, "embed_counted", None)
    if counted is not None:
        vectors, counts = counted(texts, normalize=True, truncate=truncate)
        return vectors, list(counts)
    vectors, total = context.embed(texts, normalize=True, truncate=truncate)
    return vectors, [total] + [0] * (len(texts) - 1)


def _compute(context: EngineModel, requests: list[_Request]) -> list[tuple[Vectors, int] | Exception]:
    """Every request's texts in one engine call; on failure, each request alone (blocking)."""
    texts = [t for r in requests for t in r.texts]
    try:
        vectors, counts = _embed(context, texts, all(r.truncate for r in requests))
    except Exception as e:  # noqa: BLE001 - retried per request below, or handed back
        if len(requests) == 1:
            return [e]
        return [_alone(context, r) for r in requests]
    out: list[tuple[Vectors, int] | Exception] = []
    start = 0
    for r in requests:
        end = start + len(r.texts)
        out.append((vectors[start:end], sum(counts[start:end])))
        start = end
    return out


def _alone(context: EngineModel, request: _Request) -> tuple[Vectors, int] | Exception:
    try:
        vectors, counts = _embed(context, request.texts, request.truncate)
    except Exception as e:  # noqa: BLE001 - this request's own error
        return e
    return vectors, sum(counts)
