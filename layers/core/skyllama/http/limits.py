"""Request body caps, in size and in time, enforced before a handler reads anything, and JSON
bodies read as JSON.

JSON bodies are buffered up to ``max_bytes`` and refused with 413 beyond it (by Content-Length
at once, or by counting when the length is not declared). Blob uploads are exempt: they are
streamed to storage and capped by their own limit in the blob route.

Ollama reads every body as JSON whatever its Content-Type, and the seeds' own examples use
``curl -d`` (which sends ``application/x-www-form-urlencoded``), so buffered bodies are handed on
as ``application/json``. But the CORS-"simple" types (``text/plain``, form-encoded, multipart) are
what a browser page may send anywhere without a preflight (T-34, CSRF), so a body of those types
is read as JSON only from a request no browser page sent cross-site: no ``Origin`` and no
``Sec-Fetch-Site`` but ``same-origin``/``none``; otherwise 415. With OLLAMA_ORIGINS ``*`` the
operator allowed every page, each of which could send the same body as JSON after a preflight, so
they are accepted then, as Ollama does. Bodies with a ``Content-Encoding`` (gzip, deflate, br) are
refused with 415: nothing decompresses them, so there is no decompressed size to cap.

Time (T-35, slow clients): :class:`BodyTimeoutMiddleware` closes a connection whose body stops
flowing for ``idle`` seconds, and a JSON body not complete within ``total`` seconds; blob uploads
get only the idle timeout, so a long upload is never cut while its bytes flow.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from .origins import origin_regex

STREAMED_PREFIXES = ("/api/blobs/", "/v2/")
# the Content-Types a browser page may POST to any origin without a CORS preflight
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
UNBROWSED_FETCH_SITES = (b"same-origin", b"none")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, simple_bodies_from_pages: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.simple_bodies_from_pages = simple_bodies_from_pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _encoded(scope):
            await _reply(send, 415, "request bodies with a Content-Encoding are not accepted")
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or \
                scope["path"].startswith(STREAMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not self.simple_bodies_from_pages and _simple_body_from_a_page(scope):
            await _reply(send, 415, "a request from a web page must send its JSON body with "
                                    "Content-Type: application/json")
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


def _simple_body_from_a_page(scope: Scope) -> bool:
    """Whether the body has a CORS-simple type and the request may come from a browser page on
    another site (an ``Origin``, or a ``Sec-Fetch-Site`` other than same-origin/none)."""
    headers = scope.get("headers", [])
    types = [v.decode("latin-1").split(";")[0].strip().lower() for k, v in headers if k == b"content-type"]
    if not any(essence in SIMPLE_TYPES for essence in types):
        return False
    return any(k == b"origin" or (k == b"sec-fetch-site" and v.strip().lower() not in UNBROWSED_FETCH_SITES)
               for k, v in headers)


def _encoded(scope: Scope) -> bool:
    """Whether the body is compressed (gzip, deflate, br, ...): nothing here decompresses bodies, so a
    compressed one is refused outright rather than capped after a decompression bomb (T-13)."""
    for key, value in scope.get("headers", []):
        if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return True
    return False


async def _too_large(send: Send, limit: int) -> None:
    await _reply(send, 413, f"request body too large (limit {limit} bytes)")


async def _reply(send: Send, status: int, message: str, close: bool = False) -> None:
    body: dict[str, Any] = {"error": message}
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodyTimeoutMiddleware:
    """408 and a closed connection for a request body that stalls (T-35).

    ``receive`` is wrapped until the body is complete: each wait for the next piece is bounded by
    ``idle`` seconds, and a JSON body as a whole by ``total`` seconds (blob uploads: no total). On
    expiry the app sees a client disconnect (every route already cleans up after one), its own
    answer is dropped, and a 408 with ``Connection: close`` goes out instead, if nothing was sent
    yet; the server closes the connection after it (or at once, if an answer had begun)."""

    def __init__(self, app: ASGIApp, idle: float, total: float) -> None:
        self.app = app
        self.idle = idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = scope["path"].startswith(STREAMED_PREFIXES)
        deadline = None if streamed else time.monotonic() + self.total
        body_done = False
        expired = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done, expired
            if body_done:
                return await receive()  # after the body: only the disconnect, waited on for as long as it takes
            if expired:
                return {"type": "http.disconnect"}
            wait = self.idle if deadline is None else min(self.idle, deadline - time.monotonic())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                expired = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if expired:
                return  # the 408 below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not expired:
                raise
        if expired and not started:
            await _reply(send, 408, "request body not received in time", close=True)


def install_body_limits(app: FastAPI, settings: Settings) -> None:
    """The size and type checks, and outside them the time limits on receiving a body."""
    _regex, every_origin = origin_regex(settings.origins)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       simple_bodies_from_pages=every_origin)
    app.add_middleware(BodyTimeoutMiddleware, idle=settings.body_idle_timeout, total=settings.body_timeout)
