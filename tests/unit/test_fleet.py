"""Instance records (skyllama.services.fleet): the scheduler's observer with a fake engine, a fake
clock and the SQLite state store; fleet /api/ps rows merged from two instances' records."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.keep_alive import KeepAlive
from skyllama.services.fleet.records import (
    FOREVER_HEARTBEAT,
    INSTANCE_KIND,
    InstanceRecord,
    InstanceRecorder,
    instance_id,
    live_records,
    ps_rows,
)
from skyllama.services.inference.scheduler import Scheduler
from skyllama.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    clock = FakeClock()
    settings = Settings.from_env({}, models=tmp_path, state_db=tmp_path / "s.db", keep_alive="5m", fleet="on")
    runtime = build_runtime(settings, clock=clock, inference=False)
    digest = runtime.blobs.put_file(write_tiny_gguf(tmp_path / "tiny.gguf"))
    for name, ctx in (("a", 256), ("b", 384)):
        list(runtime.creator.run(runtime.creator.plan({
            "model": name, "files": {"tiny.gguf": str(digest)}, "parameters": {"num_ctx": ctx}}, None)))
    assert isinstance(runtime.fleet, InstanceRecorder)  # wired by the composition root
    recorders = [InstanceRecorder(runtime.state, clock, instance=f"i-{n}", runtime="lambda", function="fn",
                                  gpu=False) for n in (1, 2)]
    engine = FakeEngine()
    schedulers = [Scheduler(settings, runtime.catalog, engine, clock=clock, observer=r)
                  for r in recorders]
    yield runtime, clock, schedulers
    runtime.close()


def records(runtime: Any) -> dict[str, dict[str, Any]]:
    return dict(runtime.state.query(INSTANCE_KIND))


def test_a_request_records_the_model_with_its_expiry_and_unload_removes_it(fleet: Any) -> None:
    runtime, clock, (one, _two) = fleet

    async def run() -> None:
        a = runtime.catalog.get("a", None)
        async with one.acquire(a, {}, KeepAlive.of_seconds(600)):
            pass
        [(key, record)] = records(runtime).items()
        assert key == f"i-1#{a.digest.hex}"
        assert record["model"] == "a:latest" and record["model_expires_at"] == clock.t + 600
        assert record["keep_alive"] == 600 and record["device"] == "cpu" and record["runtime"] == "lambda"
        assert record["size"] > 0 and record["context_length"] == 256
        clock.t += 120
        async with one.acquire(a, {}, KeepAlive.of_seconds(600)):  # refreshed on each request
            pass
        assert records(runtime)[key]["model_expires_at"] == clock.t + 600
        clock.t += 601
        assert records(runtime) == {}  # the store's TTL: expired records are absent
        await one.reap()  # the instance unloads it (lazily, at its next chance) and deletes its record
        assert one.ps() == []
        await one.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_keep_alive_zero_ends_the_model_in_the_whole_fleet(fleet: Any) -> None:
    runtime, clock, (one, two) = fleet

    async def run() -> None:
        a, b = runtime.catalog.get("a", None), runtime.catalog.get("b", None)
        async with one.acquire(a, {}, KeepAlive.FOREVER):
            pass
        async with two.acquire(a, {}, KeepAlive.FOREVER):
            pass
        async with two.acquire(b, {}, KeepAlive.of_seconds(300)):
            pass
        assert len(records(runtime)) == 3
        forever = records(runtime)[f"i-1#{a.digest.hex}"]
        assert forever["model_expires_at"] == -1 and forever["keep_alive"] == -1
        async with one.acquire(a, {}, KeepAlive.UNLOAD_NOW):  # keep_alive 0 on instance 1 unloads there...
            pass
        assert one.ps() == []
        assert [r["model"] for r in records(runtime).values()] == ["b:latest"]  # ...and ends a everywhere
        await one.unload(b)  # an empty prompt with keep_alive 0, on an instance that does not hold b
        assert records(runtime) == {}
        await one.close()
        await two.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_a_model_kept_forever_needs_a_heartbeat(fleet: Any) -> None:
    runtime, clock, (one, _two) = fleet

    async def run() -> None:
        async with one.acquire(runtime.catalog.get("a", None), {}, KeepAlive.FOREVER):
            pass
        clock.t += FOREVER_HEARTBEAT - 1
        assert len(records(runtime)) == 1
        clock.t += 2  # an instance gone without a word: its record runs out
        assert records(runtime) == {}
        await one.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_fleet_ps_merges_instances_and_never_shows_expired_records() -> None:
    now = 1_800_000_000.0
    base = {"digest": "ab" * 32, "size": 100, "size_vram": 0, "context_length": 2048, "details": {"format": "gguf"}}
    found = [
        ("i-1#x", {**base, "model": "smollm2:135m", "model_expires_at": now + 60, "keep_alive": 300}),
        ("i-2#x", {**base, "model": "smollm2:135m", "model_expires_at": now + 600, "keep_alive": 600}),
        ("i-2#y", {**base, "model": "all-minilm:latest", "model_expires_at": -1, "keep_alive": -1}),
        ("i-3#z", {**base, "model": "old:1b", "model_expires_at": now - 1, "keep_alive": 300}),
        # malformed (an older release's record, a hand edit): skipped by every reader, never a crash
        ("i-4#a", {"model": "bare:1b"}),
        ("i-4#b", {**base, "model": "text:1b", "model_expires_at": "soon", "keep_alive": 300}),
        ("i-4#c", {**base, "model": "nosize:1b", "model_expires_at": now + 60, "size": None}),
    ]
    rows = ps_rows(live_records(found, now), now)
    assert [r["name"] for r in rows] == ["all-minilm:latest", "smollm2:135m"]  # one row per model, expired gone
    assert rows[1]["expires_at"] == "2027-01-15T08:10:00Z"  # the latest of the two instances (now + 600)
    assert rows[0]["expires_at"].startswith("2319-04-27T")  # forever: now + Go's max duration, as Ollama shows it
    assert set(rows[1]) >= {"name", "model", "size", "digest", "details", "expires_at", "size_vram",
                            "context_length"}


def test_instance_id_names_the_lambda_execution_environment() -> None:
    stream = "2026/11/24/[$LATEST]0123456789abcdef0123456789abcdef"
    assert instance_id({"AWS_LAMBDA_LOG_STREAM_NAME": stream}) == "0123456789abcdef0123456789abcdef"
    assert instance_id({}) != instance_id({})  # elsewhere, a fresh id per process


def test_an_instance_record_round_trips_through_its_item_and_a_malformed_item_is_none() -> None:
    record = InstanceRecord(model="smollm2:135m", digest="ab" * 32, expires_at=math.inf, keep_alive=KeepAlive.FOREVER,
                            size=100, size_vram=0, context_length=2048, details={"format": "gguf"},
                            instance="i-1", runtime="lambda", function="fn", updated_at=1_800_000_000.5)
    item = record.to_item()
    assert item["model_expires_at"] == -1 and item["keep_alive"] == -1  # JSON and DynamoDB have no infinity
    assert InstanceRecord.from_item(item) == record
    assert record.store_ttl(1_800_000_000.0) == 1_800_000_000.0 + FOREVER_HEARTBEAT
    finite = InstanceRecord.from_item({**item, "model_expires_at": 1_800_000_600, "keep_alive": 600})
    assert finite is not None and finite.keep_alive == KeepAlive.of_seconds(600)
    assert finite.store_ttl(1_800_000_000.0) == 1_800_000_600
    for broken in ({"model": "bare:1b"}, {**item, "size": None}, {**item, "model_expires_at": "soon"},
                   {**item, "keep_alive": "bogus"}, {**item, "digest": 7}, {**item, "size_vram": True}):
        assert InstanceRecord.from_item(broken) is None
