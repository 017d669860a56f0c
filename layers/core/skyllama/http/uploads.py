"""Stream a request body into a blob writer: the one upload loop of ``/api/blobs`` and ``/v2/``.

uvicorn hands the body over in small pieces (about 64 KiB); they are gathered into
:data:`WRITE_BUFFER`-sized chunks, and each chunk is hashed and written in a worker thread while
the event loop already gathers the next one (hashlib and file writes release the GIL), so
receiving, hashing and writing overlap. At most two chunks are held at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from ..errors import Cancelled, PayloadTooLarge

WRITE_BUFFER = 4 << 20


async def receive_body(request: Request, write: Callable[[bytes], None], written: int, limit: int) -> None:
    """Pass the body to ``write`` in large chunks; refuse it once ``written`` plus its size passes ``limit``."""
    buffer = bytearray()
    pending: asyncio.Future[None] | None = None
    try:
        async for piece in request.stream():
            buffer += piece
            if written + len(buffer) > limit:
                raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
            if len(buffer) >= WRITE_BUFFER:
                if pending is not None:
                    await pending  # the writes stay in order; one chunk in flight
                written += len(buffer)
                # handed over, not copied: writers only hash and write it, as they would bytes
                chunk, buffer = buffer, bytearray()
                pending = asyncio.ensure_future(run_in_threadpool(write, cast(bytes, chunk)))
    except ClientDisconnect:
        raise Cancelled("request canceled") from None
    finally:
        if pending is not None:
            await pending
    if buffer:
        await run_in_threadpool(write, cast(bytes, buffer))
