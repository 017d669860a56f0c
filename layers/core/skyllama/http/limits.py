"""Request body caps, enforced before a handler reads anything, and JSON bodies read as JSON.

JSON bodies are buffered up to ``max_bytes`` and refused with 413 beyond it (by Content-Length
at once, or by counting when the length is not declared). Blob uploads are exempt: they are
streamed to storage and capped by their own limit in the blob route.

Ollama reads every body as JSON whatever its Content-Type, and the seeds' own examples use
``curl -d`` (which sends ``application/x-www-form-urlencoded``), so buffered bodies are handed on
as ``application/json``. Bodies with a ``Content-Encoding`` (gzip, deflate, br) are refused with
415: nothing decompresses them, so there is no decompressed size to cap.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STREAMED_PREFIXES = ("/api/blobs/", "/v2/")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _encoded(scope):
            await _reply(send, 415, "request bodies with a Content-Encoding are not accepted")
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or \
                scope["path"].startswith(STREAMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        await self.app({**scope, "headers": headers}, replay, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _encoded(scope: Scope) -> bool:
    """Whether the body is compressed (gzip, deflate, br, ...): nothing here decompresses bodies, so a
    compressed one is refused outright rather than capped after a decompression bomb (T-13)."""
    for key, value in scope.get("headers", []):
        if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return True
    return False


async def _too_large(send: Send, limit: int) -> None:
    await _reply(send, 413, f"request body too large (limit {limit} bytes)")


async def _reply(send: Send, status: int, message: str) -> None:
    body: dict[str, Any] = {"error": message}
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
