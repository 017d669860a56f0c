"""Non-HTTP invocations of a serverless instance: the warmer's warm-up, and the lazy expiry check.

A Lambda instance is frozen between invocations, so the scheduler's expiry task cannot unload a
model on time: :func:`reap` runs at the start of each invocation instead (lazy expiry). A warm-up
names models with their fleet ``expires_at`` and ``keep_alive``; each is held until then, loaded
first if this instance lost it, and its instance record is written again with the same expiry.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import FastAPI

from ..composition import Services
from ..services import inference
from .routes.inference import scheduler_of

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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


async def reap(app: FastAPI) -> None:
    """Unload models whose keep_alive ran out while the instance was frozen (none loaded: nothing)."""
    svc: Services = app.state.services
    if "scheduler" in svc.extras:
        await scheduler_of(app).reap()


async def warm_up(app: FastAPI, entries: Any, now: float | None = None) -> dict[str, str]:
    """Hold each ``{"name", "expires_at", "keep_alive"}`` model until its ``expires_at`` (-1: forever),
    recording the ``keep_alive`` the fleet asked for (so a long one stays long)."""
    svc: Services = app.state.services
    await reap(app)
    outcome: dict[str, str] = {}
    if not isinstance(entries, list):
        return outcome
    now = svc.clock.now() if now is None else now
    for entry in entries[:MAX_WARM_MODELS]:
        name = entry.get("name") if isinstance(entry, dict) else entry  # a bare name: the default keep_alive
        if not isinstance(name, str) or not name:
            continue
        expires = entry.get("expires_at") if isinstance(entry, dict) else None
        asked = entry.get("keep_alive") if isinstance(entry, dict) else None
        if not all(_is_number(v) for v in (expires, asked) if v is not None):
            outcome[name] = "bad expires_at or keep_alive"
            continue
        until = None if expires is None else (math.inf if expires < 0 else float(expires))
        if until is not None and until <= now:
            outcome[name] = "expired"  # the fleet's keep_alive ended: nothing to hold
            continue
        try:
            prep = await asyncio.to_thread(inference.prepare, svc.catalog, name, None, asked)
            async with scheduler_of(app).acquire(prep.model, prep.options, prep.keep_alive, until=until):
                pass
            outcome[name] = "warm"
        except Exception as e:  # noqa: BLE001 - one model failing must not stop the others
            log.warning("warm-up of %s failed: %s", name, e)
            outcome[name] = f"failed: {e}"
    return outcome
