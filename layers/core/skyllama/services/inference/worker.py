"""A blocking engine iterator run in a thread of its own, its items handed to the event loop.

The thread owns the runner's context for the whole request. The consumer going away (a client
disconnect, or a cancel through the request's handle) sets the engine's cancel flag, which the
engine checks between tokens and inside prompt evaluation; the lease is released only once the
thread has stopped touching the context.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .cancel import Handle


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def in_worker(work: Callable[[threading.Event], Iterator[Any]], handle: Handle | None) -> AsyncIterator[Any]:
    """Run ``work(cancel)`` in its own thread and yield its items on the event loop.

    Closing this generator sets the cancel flag and waits for the thread to end; ``handle``
    (``DELETE /api/requests/{id}``) sets it too, and the stream then ends normally.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()
    closing = threading.Event()
    if handle is not None:
        handle.watch(cancel)
    finished: asyncio.Future[None] = loop.create_future()

    def put(kind: str, value: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def run() -> None:
        try:
            for item in work(cancel):
                put("item", item)
                if closing.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put("error", e)
        finally:
            put("end", None)
            loop.call_soon_threadsafe(_settle, finished)

    threading.Thread(target=run, name="skyllama-generate", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            # Text that piled up while the client was being served goes out as one chunk: on a
            # busy CPU this keeps per-token HTTP work from slowing the decode threads.
            while isinstance(value, str) and not queue.empty() and isinstance(queue._queue[0][1], str):  # type: ignore[attr-defined]
                value += queue.get_nowait()[1]
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        closing.set()
        cancel.set()
        cancelled = False
        while not finished.done():  # the context is ours until the thread lets go of it
            try:
                await asyncio.shield(finished)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
