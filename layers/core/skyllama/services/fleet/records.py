"""keep_alive across a fleet: each instance records the models it holds; readers merge the records.

In a serverless fleet a loaded model lives in a short-lived instance (a Lambda execution
environment, a GPU container), so "which models are loaded, until when" is shared state:

- Every instance writes one **instance record** per loaded model (:class:`InstanceRecord`; state
  kind ``instance``, key ``<instance>#<manifest digest>``) with its ``expires_at`` (from the
  request's keep_alive, as the embedded scheduler computes it with :mod:`skyllama.keep_alive`),
  size and device. The record is refreshed when a request ends
  and removed when the instance unloads the model. A keep_alive of 0 ends the model's keep_alive
  fleet-wide: every instance's record of it goes, so the warmer stops warming it.
- Records expire on their own (the store's TTL): a finite keep_alive at its ``expires_at``; a
  model kept forever after :data:`FOREVER_HEARTBEAT` unless a request or a warm-up refreshes it,
  so an instance the platform reclaimed without a word leaves no record behind for long.
- Readers (fleet ``/api/ps``, the warmer) ignore expired records (:func:`live_records`) and merge
  per model: one row per model with the latest ``expires_at`` (:func:`ps_rows`).

:class:`InstanceRecorder` is the scheduler's observer; the rest are pure functions of records.
When a model expires, and how forever is written in a record, is :mod:`skyllama.keep_alive`'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import InvalidDuration
from ...keep_alive import KeepAlive, expiry_from_wire, expiry_to_wire, ps_expires_at
from ...ports import Clock, StateStore

if TYPE_CHECKING:
    from ..inference.scheduler import Runner

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


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> float:
    """A number from a record; anything else makes the record malformed (``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


@dataclass(frozen=True)
class InstanceRecord:
    """What an inference instance writes to the state store for one model it holds.

    The item's field names and number encoding (``-1`` for forever, see :mod:`skyllama.keep_alive`)
    are the ones earlier releases wrote, so a fleet in the middle of a deployment reads both.
    """

    model: str  # the name it was asked for, e.g. ``smollm2:135m``
    digest: str  # manifest digest (hex)
    expires_at: float  # epoch seconds; math.inf: kept forever
    keep_alive: KeepAlive  # what the request asked for (a warm-up keeps it)
    size: int
    size_vram: int
    context_length: int
    device: str = "cpu"
    details: dict[str, Any] = field(default_factory=dict)
    instance: str = ""
    runtime: str = ""  # lambda, container or process
    function: str = ""  # the Lambda function it runs in ("" for a container or unknown)
    updated_at: float = 0.0  # the heartbeat: when the instance last wrote it

    @classmethod
    def of(cls, runner: Runner, *, instance: str, runtime: str, function: str, now: float,
           gpu: bool) -> InstanceRecord:
        """The record of ``runner`` held by ``instance`` (pure: everything it needs is passed in)."""
        size = sum(c.memory_bytes() for c in runner.contexts)
        on_gpu = gpu and runner.spec.n_gpu_layers != 0
        return cls(model=runner.model.name.display(), digest=runner.model.digest.hex,
                   expires_at=runner.expires_at, keep_alive=runner.keep_alive, size=size,
                   size_vram=size if on_gpu else 0, context_length=runner.spec.n_ctx,
                   device="gpu" if on_gpu else "cpu", details=runner.model.details(), instance=instance,
                   runtime=runtime, function=function, updated_at=now)

    def to_item(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "runtime": self.runtime, "function": self.function,
            "model": self.model, "digest": self.digest, "size": self.size, "size_vram": self.size_vram,
            "device": self.device, "context_length": self.context_length, "details": self.details,
            "keep_alive": self.keep_alive.to_wire(), "model_expires_at": expiry_to_wire(self.expires_at),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> InstanceRecord | None:
        """The record in ``item``, or ``None`` when a field readers use is missing or of the wrong
        type (an older release's or a hand-edited record: skipped, never a crash)."""
        model, digest = item.get("model"), item.get("digest")
        if not isinstance(model, str) or not isinstance(digest, str):
            return None
        try:
            keep_alive = KeepAlive.from_wire(item.get("keep_alive", 0))
            expires_at = expiry_from_wire(item["model_expires_at"])
            size, size_vram = int(_number(item["size"])), int(_number(item["size_vram"]))
            context_length = int(_number(item["context_length"]))
            updated_at = _number(item.get("updated_at", 0))
        except (KeyError, ValueError, InvalidDuration):
            return None
        details = item.get("details")
        return cls(model=model, digest=digest, expires_at=expires_at, keep_alive=keep_alive, size=size,
                   size_vram=size_vram, context_length=context_length, device=_text(item.get("device")) or "cpu",
                   details=details if isinstance(details, dict) else {}, instance=_text(item.get("instance")),
                   runtime=_text(item.get("runtime")), function=_text(item.get("function")),
                   updated_at=updated_at)

    def store_ttl(self, now: float) -> float:
        """When the store may drop the record: the model's expiry, or a heartbeat for one kept forever."""
        return now + FOREVER_HEARTBEAT if math.isinf(self.expires_at) else self.expires_at

    def live(self, now: float) -> bool:
        return self.expires_at > now


def live_records(items: Iterable[tuple[str, Mapping[str, Any]]], now: float) -> list[InstanceRecord]:
    """Well-formed records whose model has not expired at ``now`` (the store's TTL is lazy, and clocks differ)."""
    records = (InstanceRecord.from_item(item) for _key, item in items)
    return [record for record in records if record is not None and record.live(now)]


def ps_rows(records: Iterable[InstanceRecord], now: float) -> list[dict[str, Any]]:
    """Fleet ``/api/ps``: one row per model, with its latest ``expires_at``, longest-lived first."""
    latest: dict[str, InstanceRecord] = {}
    for record in records:
        seen = latest.get(record.model)
        if seen is None or record.expires_at > seen.expires_at:
            latest[record.model] = record
    return [{
        "name": r.model, "model": r.model, "size": r.size, "digest": r.digest, "details": r.details,
        "expires_at": ps_expires_at(r.expires_at, now), "size_vram": r.size_vram,
        "context_length": r.context_length,
    } for r in sorted(latest.values(), key=lambda r: (-r.expires_at, r.model))]


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

    def gpu(self, runner: Runner) -> bool:
        """Whether ``runner``'s model is offloaded to a GPU (its runner process reports it)."""
        if self._gpu is not None:
            return self._gpu
        return any(getattr(context, "on_gpu", False) for context in runner.contexts)

    def key(self, digest: str) -> str:
        return f"{self.instance}#{digest}"

    async def used(self, runner: Runner) -> None:
        """A request on ``runner`` ended: its expiry moved, so its record is written again."""
        now = self.clock.now()
        record = InstanceRecord.of(runner, instance=self.instance, runtime=self.runtime, function=self.function,
                                   now=now, gpu=self.gpu(runner))
        await self._quietly(self.state.put, INSTANCE_KIND, self.key(record.digest), record.to_item(),
                            expires_at=record.store_ttl(now))

    async def unloaded(self, runner: Runner) -> None:
        """``runner`` left memory: its record goes; with keep_alive 0, every instance's record of it."""
        if runner.keep_alive.unload_now:
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
