"""The scheduler with a fake engine and a fake clock: keep_alive, LRU, queue limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.errors import Busy
from skyllama.keep_alive import KeepAlive
from skyllama.services.inference.scheduler import Scheduler
from skyllama.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def setup(tmp_path: Path):
    settings = Settings.from_env({}, models=tmp_path, state_db=tmp_path / "s.db", max_loaded_models=2,
                                 max_queue=1, keep_alive="5m")
    runtime = build_runtime(settings, inference=False)
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    digest = runtime.blobs.put_file(gguf)
    for name, ctx in (("a", 256), ("b", 384), ("c", 512)):
        list(runtime.creator.run(runtime.creator.plan({
            "model": name, "files": {"tiny.gguf": str(digest)}, "parameters": {"num_ctx": ctx}}, None)))
    clock, engine = FakeClock(), FakeEngine()
    sched = Scheduler(settings, runtime.catalog, engine, clock=clock)
    yield sched, runtime.catalog, clock, engine
    runtime.close()


def test_keep_alive_expiry_and_lru(setup) -> None:
    sched, catalog, clock, engine = setup

    async def run() -> None:
        a, b, c = (catalog.get(n, None) for n in "abc")
        async with sched.acquire(a, {}, KeepAlive.of_seconds(10)):
            pass
        clock.t += 1
        async with sched.acquire(b, {}, None):
            pass
        assert [r["name"] for r in sched.ps()] == ["b:latest", "a:latest"]  # longest remaining first
        clock.t += 1
        async with sched.acquire(a, {}, KeepAlive.of_seconds(10)):  # a is now the most recently used
            pass
        async with sched.acquire(c, {}, None):  # evicts b, the LRU
            pass
        assert sorted(r["name"] for r in sched.ps()) == ["a:latest", "c:latest"]
        clock.t += 11
        await sched.reap()
        assert [r["name"] for r in sched.ps()] == ["c:latest"]
        async with sched.acquire(c, {}, KeepAlive.UNLOAD_NOW):
            pass
        assert sched.ps() == []
        assert len(engine.closed) == len(engine.loads) == 3
        await sched.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_queue_limit_and_busy_runners_are_never_evicted(setup) -> None:
    sched, catalog, _clock, _engine = setup

    async def run() -> None:
        a, b, c = (catalog.get(n, None) for n in "abc")
        release = asyncio.Event()

        async def hold(model) -> None:
            async with sched.acquire(model, {}, None):
                await release.wait()

        holders = [asyncio.create_task(hold(a)), asyncio.create_task(hold(b))]
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(hold(c))  # both runners busy: c waits for room
        await asyncio.sleep(0.05)
        assert not waiter.done() and sched._waiting == 1
        with pytest.raises(Busy):
            async with sched.acquire(a, {}, None):
                pass
        release.set()
        await asyncio.gather(*holders, waiter)
        assert "c:latest" in [r["name"] for r in sched.ps()]
        await sched.close()

    asyncio.run(asyncio.wait_for(run(), 20))
