"""keep_alive across a fleet: each instance records the models it holds; readers merge the records.

In a serverless fleet a loaded model lives in a short-lived instance (a Lambda execution
environment, a GPU container), so "which models are loaded, until when" is shared state:

- Every instance writes one **instance record** per loaded model (state kind ``instance``, key
  ``<instance>#<manifest digest>``) with its ``expires_at`` (from the request's keep_alive, as the
  embedded scheduler computes it), size and device. The record is refreshed when a request ends
  and removed when the instance unloads the model. A keep_alive of 0 ends the model's keep_alive
  fleet-wide: every instance's record of it goes, so the warmer stops warming it.
- Records expire on their own (the store's TTL): a finite keep_alive at its ``expires_at``; a
  model kept forever after :data:`FOREVER_HEARTBEAT` unless a request or a warm-up refreshes it,
  so an instance the platform reclaimed without a word leaves no record behind for long.
- Readers (fleet ``/api/ps``, the warmer) ignore expired records (:func:`live_records`) and merge
  per model: one row per model with the latest ``expires_at`` (:func:`ps_rows`).

:class:`InstanceRecorder` is the scheduler's observer; the rest are pure functions of records.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..ports import Clock, StateStore
from ..timefmt import rfc3339

if TYPE_CHECKING:
    from .scheduler import Runner

log = logging.getLogger(__name__)

INSTANCE_KIND = "instance"
# A record of a model kept forever lives this long past its last refresh. The warmer refreshes
# records every minute through its warm-ups, so only records of vanished instances run out.
FOREVER_HEARTBEAT = 15 * 60.0


def instance_id(environ: dict[str, str] | None = None) -> str:
    """This process's id in the fleet: the Lambda log stream names the execution environment."""
    env = os.environ if environ is None else environ
    stream = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
    suffix = stream.rsplit("]", 1)[-1] if stream else ""
    return (suffix or uuid.uuid4().hex)[:64]


def runtime_kind(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return "lambda"
    return "container" if env.get("ECS_CONTAINER_METADATA_URI_V4") else "process"


def record_of(runner: Runner, instance: str, runtime: str, function: str, now: float, gpu: bool) -> dict[str, Any]:
    """The record of ``runner`` held by ``instance`` (pure: everything it needs is passed in)."""
    size = sum(c.memory_bytes() for c in runner.contexts)
    on_gpu = gpu and runner.spec.n_gpu_layers != 0
    forever = math.isinf(runner.expires_at)
    return {
        "instance": instance, "runtime": runtime, "function": function,
        "model": runner.model.name.display(), "digest": runner.model.digest.hex,
        "size": size, "size_vram": size if on_gpu else 0, "device": "gpu" if on_gpu else "cpu",
        "context_length": runner.spec.n_ctx, "details": runner.model.details(),
        # -1 stands for "forever" in both (JSON and DynamoDB have no infinity)
        "keep_alive": -1 if math.isinf(runner.keep_alive) else runner.keep_alive,
        "model_expires_at": -1 if forever else runner.expires_at,
        "updated_at": now,
    }


def record_ttl(record: dict[str, Any], now: float) -> float:
    """When the store may drop ``record``: the model's expiry, or a heartbeat for a model kept forever."""
    expires = float(record["model_expires_at"])
    return now + FOREVER_HEARTBEAT if expires < 0 else expires


def model_expiry(record: dict[str, Any]) -> float:
    expires = float(record["model_expires_at"])
    return math.inf if expires < 0 else expires


def well_formed(record: dict[str, Any]) -> bool:
    """A record with every field readers use, of the right type (an older or foreign one is skipped)."""
    try:
        float(record["model_expires_at"]), float(record.get("keep_alive", 0))
        int(record["size"]), int(record["size_vram"]), int(record["context_length"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(record.get("model"), str) and isinstance(record.get("digest"), str)


def live_records(records: Iterable[tuple[str, dict[str, Any]]], now: float) -> list[dict[str, Any]]:
    """Well-formed records whose model has not expired at ``now`` (the store's TTL is lazy, and clocks differ)."""
    return [item for _key, item in records if well_formed(item) and model_expiry(item) > now]


def ps_rows(records: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Fleet ``/api/ps``: one row per model, with its latest ``expires_at``, longest-lived first."""
    from .scheduler import FOREVER_DELTA

    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        seen = latest.get(record["model"])
        if seen is None or model_expiry(record) > model_expiry(seen):
            latest[record["model"]] = record
    rows = []
    for record in sorted(latest.values(), key=lambda r: (-model_expiry(r), r["model"])):
        expiry = model_expiry(record)
        expires = (datetime.fromtimestamp(now, tz=UTC) + FOREVER_DELTA if math.isinf(expiry)
                   else datetime.fromtimestamp(expiry, tz=UTC))
        rows.append({
            "name": record["model"], "model": record["model"], "size": int(record["size"]),
            "digest": record["digest"], "details": record.get("details") or {},
            "expires_at": rfc3339(expires), "size_vram": int(record["size_vram"]),
            "context_length": int(record["context_length"]),
        })
    return rows


class InstanceRecorder:
    """The scheduler's observer: keeps this instance's records in the state store.

    A failed write is logged and never fails the request: the record is advisory (the worst
    case is a model the warmer does not keep warm, or one ``/api/ps`` misses).
    """

    def __init__(self, state: StateStore, clock: Clock, *, instance: str | None = None,
                 runtime: str | None = None, function: str | None = None, gpu: bool | None = None) -> None:
        self.state = state
        self.clock = clock
        self.instance = instance or instance_id()
        self.runtime = runtime or runtime_kind()
        self.function = function if function is not None else os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self._gpu = gpu

    @property
    def gpu(self) -> bool:
        """Whether llama.cpp offloads here (asked once a model is loaded, so no import at start)."""
        if self._gpu is None:
            from ..engine.llama import supports_gpu

            self._gpu = supports_gpu()
        return self._gpu

    def key(self, digest: str) -> str:
        return f"{self.instance}#{digest}"

    async def used(self, runner: Runner) -> None:
        """A request on ``runner`` ended: its expiry moved, so its record is written again."""
        now = self.clock.now()
        record = record_of(runner, self.instance, self.runtime, self.function, now, self.gpu)
        await self._quietly(self.state.put, INSTANCE_KIND, self.key(record["digest"]), record,
                            expires_at=record_ttl(record, now))

    async def unloaded(self, runner: Runner) -> None:
        """``runner`` left memory: its record goes; with keep_alive 0, every instance's record of it."""
        if runner.keep_alive <= 0:
            await self.forget(runner.model.digest.hex)
        else:
            await self._quietly(self.state.delete, INSTANCE_KIND, self.key(runner.model.digest.hex))

    async def forget(self, digest: str) -> None:
        """End the model's keep_alive in the whole fleet (a request with keep_alive 0)."""
        await self._quietly(self._forget, digest)

    def _forget(self, digest: str) -> None:
        for key, item in self.state.query(INSTANCE_KIND):
            if item.get("digest") == digest:
                self.state.delete(INSTANCE_KIND, key)

    def rows(self) -> list[dict[str, Any]]:
        """Fleet ``/api/ps`` rows (blocking: call it in a thread)."""
        now = self.clock.now()
        return ps_rows(live_records(self.state.query(INSTANCE_KIND), now), now)

    async def _quietly(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - advisory state: log, never fail the request
            log.warning("instance record not updated: %s", e)
