"""The scheduler's batched runners (fake engine): one shared model for every slot, or a context each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.engine.base import LoadSpec
from skyllama.engine.fake import FakeEngine, FakeModel
from skyllama.services.inference.scheduler import Scheduler
from skyllama.settings import Settings


def _scheduler(tmp_path: Path, **overrides: Any) -> tuple[Scheduler, Any, FakeEngine, list[tuple[LoadSpec, int]]]:
    settings = Settings.from_env({}, models=tmp_path, state_db=tmp_path / "s.db", **{"num_parallel": 3, **overrides})
    runtime = build_runtime(settings, inference=False)
    digest = runtime.blobs.put_file(write_tiny_gguf(tmp_path / "tiny.gguf"))
    list(runtime.creator.run(runtime.creator.plan({
        "model": "tiny", "files": {"tiny.gguf": str(digest)}, "parameters": {"num_ctx": 256}}, None)))
    engine = BatchingFake()
    sched = Scheduler(settings, runtime.catalog, engine)
    batched = engine.batched
    return sched, runtime.catalog.get("tiny", None), engine, batched


@dataclass
class BatchingFake(FakeEngine):
    """The fake engine with a batched loader that records what it was asked for."""

    batching: bool = True
    batched: list[tuple[LoadSpec, int]] = field(default_factory=list)

    def load_batched(self, spec: LoadSpec, n_seq: int) -> FakeModel:
        self.batched.append((spec, n_seq))
        return self.load(spec)


async def _three_at_once(sched: Scheduler, model: Any) -> list[Any]:
    inside = asyncio.Barrier(3)
    contexts: list[Any] = []

    async def one() -> None:
        async with sched.acquire(model, {}) as lease:
            contexts.append(lease.context)
            await inside.wait()  # all three slots held at the same time

    await asyncio.wait_for(asyncio.gather(one(), one(), one()), 10)
    return contexts


def test_slots_share_one_batched_model(tmp_path: Path) -> None:
    sched, model, engine, batched = _scheduler(tmp_path)

    async def run() -> None:
        contexts = await _three_at_once(sched, model)
        assert len({id(c) for c in contexts}) == 1
        assert [(spec.n_ctx, n) for spec, n in batched] == [(256, 3)]  # per-request num_ctx, 3 sequences
        assert len(engine.loads) == 1
        runner = sched.loaded()[0]
        assert runner.shared and runner.free == [] and sched.ps()[0]["num_parallel"] == 3
        await sched.close()
        assert len(engine.closed) == 1

    asyncio.run(run())


def test_batching_off_gives_each_slot_its_own_context(tmp_path: Path) -> None:
    sched, model, engine, batched = _scheduler(tmp_path, gen_batching=False)

    async def run() -> None:
        contexts = await _three_at_once(sched, model)
        assert len({id(c) for c in contexts}) == 3 and batched == [] and len(engine.loads) == 3
        assert not sched.loaded()[0].shared
        await sched.close()

    asyncio.run(run())


def test_one_slot_is_never_batched(tmp_path: Path) -> None:
    sched, model, engine, batched = _scheduler(tmp_path, num_parallel=1)

    async def run() -> None:
        async with sched.acquire(model, {}):
            pass
        assert batched == [] and len(engine.loads) == 1 and not sched.loaded()[0].shared
        await sched.close()

    asyncio.run(run())
