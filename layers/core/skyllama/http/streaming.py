"""The one stream, disconnect and error layer every front (Ollama, OpenAI, Anthropic) sends through.

- A client that hangs up cancels its request at once, also while the model is still evaluating
  the prompt (no event has come yet): waiting for the next event races the disconnect, and the
  generation is closed, which stops the engine (``services/inference/worker.py``).
- Streamed: an error before the first event propagates, so the front answers with a real status;
  after it, the front's ``error_line`` ends the stream in-band (Ollama: an ``{"error": ...}`` line
  with status 200). However the response ends, the event generator is closed: a client that goes
  away mid-stream makes ``send`` fail, which would otherwise leave it suspended, holding its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import Cancelled, SkyllamaError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _both(step: asyncio.Future[Any], watcher: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
    return {step, watcher}


async def until_disconnect(request: Request, events: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """``events``, until they end or the client goes away (then :class:`Cancelled`, 499)."""
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        while True:
            step: asyncio.Future[T] = asyncio.ensure_future(anext(events))
            await asyncio.wait(_both(step, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
                raise Cancelled("request canceled")
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        watcher.cancel()
        await events.aclose()


async def first_event(request: Request, events: AsyncGenerator[T, None]) -> T | None:
    """The first event, raced against a disconnect (``None`` when there is none)."""
    watcher = asyncio.ensure_future(_disconnected(request))
    step: asyncio.Future[T] = asyncio.ensure_future(anext(events))
    try:
        await asyncio.wait(_both(step, watcher), return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                await step
            await events.aclose()
            raise Cancelled("request canceled")
        try:
            return step.result()
        except StopAsyncIteration:
            return None
        except BaseException:
            await events.aclose()
            raise
    finally:
        watcher.cancel()


def error_message(exc: BaseException) -> str:
    """What a client may be told of an error: a skyllama error's message, else nothing."""
    if isinstance(exc, SkyllamaError):
        return exc.message
    log.exception("error while streaming", exc_info=exc)
    return "internal server error"


async def stream(request: Request, events: AsyncGenerator[T, None], encode: Callable[[T], list[bytes]],
                 error_line: Callable[[BaseException], bytes], media_type: str, *,
                 end: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    """Send ``events``, each ``encode``d, as one streamed response (see the module docstring)."""
    first = await first_event(request, events)

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                for chunk in encode(first):
                    yield chunk
            async for event in events:
                for chunk in encode(event):
                    yield chunk
        except Exception as exc:  # noqa: BLE001 - the stream has begun: report in-band
            yield error_line(exc)
            return
        if end:
            yield end

    return Closing(StreamingResponse(body(), media_type=media_type, headers=headers), events)


class Closing(Response):
    """Closes the event generator however the response ends."""

    def __init__(self, inner: Response, events: AsyncGenerator[Any, None]) -> None:
        self.inner = inner
        self.events = events
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            await self.events.aclose()
