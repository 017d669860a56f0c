"""Non-HTTP invocations of a serverless instance: the warmer's warm-up, and the lazy expiry check.

A Lambda instance is frozen between invocations, so the scheduler's expiry task cannot unload a
model on time: :func:`reap` runs at the start of each invocation instead (lazy expiry). A warm-up
names models with their fleet ``expires_at`` and ``keep_alive`` (in :mod:`skyllama.keep_alive`'s
wire form, ``-1``: forever); each is held until then, loaded first if this instance lost it, and
its instance record is written again with the same expiry.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidDuration
from ...keep_alive import KeepAlive, expiry_from_wire
from ..inference.scheduler import Scheduler
from ..inference.service import Inference

log = logging.getLogger(__name__)
MAX_WARM_MODELS = 16  # a warm-up names a few models; a longer list is not from the warmer


def event_loop() -> asyncio.AbstractEventLoop:
    """The loop Mangum (and the streaming runtime) run the app on, so the scheduler stays on one loop."""
    try:
        return asyncio.get_event_loop()
    except RuntimeError:  # no loop in this thread yet
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop


@dataclass(frozen=True)
class WarmUpEntry:
    """One model a warm-up names, decoded from the warmer's event."""

    name: str
    until: float | None = None  # the fleet's expires_at (epoch seconds, inf: forever); None: keep_alive's own
    keep_alive: KeepAlive | None = None  # the keep_alive to record; None: the default
    refused: str = ""  # why it is not held ("" when it is)


def decode_entry(entry: Any) -> WarmUpEntry | None:
    """An entry of the event's ``models`` (``None`` without a usable name: ignored)."""
    name = entry.get("name") if isinstance(entry, dict) else entry  # a bare name: the default keep_alive
    if not isinstance(name, str) or not name:
        return None
    if not isinstance(entry, dict):
        return WarmUpEntry(name)
    expires, asked = entry.get("expires_at"), entry.get("keep_alive")
    try:
        until = None if expires is None else expiry_from_wire(expires)
        keep_alive = None if asked is None else KeepAlive.from_wire(asked)
    except InvalidDuration:
        return WarmUpEntry(name, refused="bad expires_at or keep_alive")
    return WarmUpEntry(name, until, keep_alive)


async def reap(scheduler: Scheduler | None) -> None:
    """Unload models whose keep_alive ran out while the instance was frozen (none loaded: nothing)."""
    if scheduler is not None:
        await scheduler.reap()


async def warm_up(inference: Inference, entries: Any, now: float) -> dict[str, str]:
    """Hold each ``{"name", "expires_at", "keep_alive"}`` model until its ``expires_at`` (-1: forever),
    recording the ``keep_alive`` the fleet asked for (so a long one stays long)."""
    await reap(inference.scheduler)
    outcome: dict[str, str] = {}
    if not isinstance(entries, list):
        return outcome
    for entry in entries[:MAX_WARM_MODELS]:
        decoded = decode_entry(entry)
        if decoded is None:
            continue
        name = decoded.name
        if decoded.refused:
            outcome[name] = decoded.refused
            continue
        if decoded.until is not None and decoded.until <= now:
            outcome[name] = "expired"  # the fleet's keep_alive ended: nothing to hold
            continue
        try:
            await inference.load(name, decoded.keep_alive, until=decoded.until)
            outcome[name] = "warm"
        except Exception as e:  # noqa: BLE001 - one model failing must not stop the others
            log.warning("warm-up of %s failed: %s", name, e)
            outcome[name] = f"failed: {e}"
    return outcome
