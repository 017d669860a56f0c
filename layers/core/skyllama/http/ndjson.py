"""Ollama's stream encoding: one compact JSON object per line, no blank lines (the progress routes:
create, pull, push; generate and chat go through ``streaming.stream`` with these lines).

- ``stream`` true (the default): ``application/x-ndjson``. An error before the first line gets a
  real status and ``{"error": ...}``; after it, an ``{"error": ...}`` line ends the stream with 200.
- ``stream`` false: only the last event (progress routes) or a merged object (generate, chat), as
  one ``application/json`` body, or the error with its status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from .streaming import error_message

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
Event = dict[str, Any]


def line(event: Event) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_line(exc: BaseException) -> bytes:
    """An error after the stream began: an ``{"error": ...}`` line (status 200, as Ollama)."""
    return line({"error": error_message(exc)})


async def _aiter(events: Iterator[Event] | AsyncIterator[Event]) -> AsyncIterator[Event]:
    if hasattr(events, "__anext__"):
        async for event in events:  # type: ignore[union-attr]
            yield event
    else:
        async for event in iterate_in_threadpool(events):  # type: ignore[arg-type]
            yield event


async def respond(
    events: Iterator[Event] | AsyncIterator[Event],
    stream: bool | None,
    merge: Callable[[list[Event]], Event] | None = None,
) -> Response:
    """Send ``events`` as NDJSON, or (``stream`` false) as one JSON object.

    Blocking (sync) iterators run in the thread pool so they never block the event loop.
    """
    source = _aiter(events)
    if stream is False:
        collected: list[Event] = []
        async for event in source:  # errors propagate to the one error handler
            collected.append(event)
        body = merge(collected) if merge else (collected[-1] if collected else {})
        return JSONResponse(body)
    try:
        first = await source.__anext__()
    except StopAsyncIteration:
        return StreamingResponse(iter(()), media_type=NDJSON)

    async def lines() -> AsyncIterator[bytes]:
        yield line(first)
        try:
            async for event in source:
                yield line(event)
        except Exception as exc:  # noqa: BLE001 - the stream has begun: report in-band
            yield error_line(exc)

    return StreamingResponse(lines(), media_type=NDJSON)


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(fn, *args, **kwargs)
