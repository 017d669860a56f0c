"""A custom Lambda runtime that streams the ASGI app's responses to a Function URL as they are produced.

Mangum collects the whole body before the handler returns, so a generation reaches the client only
when it ends. Here each ``http.response.body`` message of the app is one chunk of a streamed
invocation response (:mod:`.runtime_api`): NDJSON lines leave the function as tokens are generated.

- Function URL (payload 2.0) events are streamed; the ASGI scope and request body come from
  Mangum's own event handler, so both paths see the same request.
- Anything else (the warmer's event, REST API or ALB events) goes to the buffered ``handler``
  (Mangum), whose result is posted as usual.
- An exception or the invocation's deadline after the first byte ends an NDJSON body with an
  ``{"error": ...}`` line and the error trailers; before it, the client gets a JSON error status.
- A client that goes away (a failed write) is an ``http.disconnect`` for the app, which then stops
  generating.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from .runtime_api import Invocation, ResponseStream, RuntimeApi, RuntimeApiError, diagnostic

log = logging.getLogger(__name__)

ASGIApp = Callable[..., Any]
Handler = Callable[[Any, Any], Any]
DEADLINE_MARGIN_S = 1.0  # stop the app this long before Lambda's hard stop, to end the body cleanly


class DeadlineReached(Exception):
    """The invocation's deadline is near: the response is cut short."""


def is_streamable(event: Any) -> bool:
    """A Function URL (or HTTP API) request: payload format 2.0 with an HTTP request context."""
    return (
        isinstance(event, dict)
        and event.get("version") == "2.0"
        and "http" in event.get("requestContext", {})
    )


def _prelude(status: int, raw_headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], str]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name_b, value_b in raw_headers:
        name, value = name_b.decode("latin-1").lower(), value_b.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        else:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {"statusCode": status, "headers": headers, "cookies": cookies}, headers.get("content-type", "")


class _Exchange:
    """One request through the app: the receive/send pair, and the stream opened on ``response.start``."""

    def __init__(self, api: RuntimeApi, invocation: Invocation, body: bytes) -> None:
        self.api, self.invocation = api, invocation
        self.stream: ResponseStream | None = None
        self.content_type = ""
        self.complete = False
        self._body: bytes | None = body
        self._gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            prelude, self.content_type = _prelude(message["status"], message.get("headers", []))
            self.stream = await self.api.open_stream(self.invocation.request_id, prelude)
        elif message["type"] == "http.response.body" and self.stream is not None:
            await self.stream.write(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
        if self.complete or (self.stream is not None and self.stream.broken):
            self._gone.set()  # Starlette waits on receive() for the end of the exchange

    async def fail(self, exc: BaseException) -> None:
        """End the exchange after ``exc``: an error line and trailers, or an error status, or /error."""
        error = diagnostic(exc, "Function.DeadlineExceeded" if isinstance(exc, DeadlineReached) else None)
        message = str(exc) if isinstance(exc, DeadlineReached) else "internal server error"
        if self.stream is None and isinstance(exc, DeadlineReached):
            self.stream = await self.api.open_stream(
                self.invocation.request_id,
                {"statusCode": 504, "headers": {"content-type": "application/json"}, "cookies": []},
            )
            await self.stream.write(json.dumps({"error": message}).encode())
            await self.stream.close()
        elif self.stream is None:
            self.api.error(self.invocation.request_id, exc)
        else:
            if not self.complete and self.content_type.startswith("application/x-ndjson"):
                await self.stream.write(json.dumps({"error": message}).encode() + b"\n")
            await self.stream.close(error)


async def stream_invocation(
    app: ASGIApp, api: RuntimeApi, invocation: Invocation, *, margin_s: float = DEADLINE_MARGIN_S
) -> None:
    """Run one Function URL request through ``app``, streaming its response to the Runtime API."""
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
    from mangum.handlers import HTTPGateway
    from mangum.types import LambdaConfig

    config = LambdaConfig(
        api_gateway_base_path="/", text_mime_types=DEFAULT_TEXT_MIME_TYPES, exclude_headers=[]
    )
    try:
        request = HTTPGateway(invocation.event, invocation.context(), config)
        scope, body = request.scope, request.body
    except Exception as exc:  # noqa: BLE001 - a malformed event fails this invocation only
        api.error(invocation.request_id, exc, "Runtime.InvalidEvent")
        return
    exchange = _Exchange(api, invocation, body)
    timeout = invocation.seconds_left() - margin_s if invocation.deadline_ms else None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            await app(scope, exchange.receive, exchange.send)
    except Exception as exc:  # noqa: BLE001 - reported to the client, then the next invocation
        if isinstance(exc, TimeoutError) and deadline.expired():  # ours, not one the app raised
            exc = DeadlineReached("the function's time limit was reached before the response ended")
        log.warning("streamed invocation failed: %r", exc, exc_info=not isinstance(exc, DeadlineReached))
        await exchange.fail(exc)
        return
    if exchange.stream is None:
        await exchange.fail(RuntimeError("the app sent no response"))
    else:
        await exchange.stream.close()


def serve(
    app: ASGIApp, handler: Handler, api: RuntimeApi | None = None, *, invocations: int | None = None
) -> None:
    """The runtime loop: each invocation streamed (Function URL) or handed to ``handler`` (buffered).

    Runs forever, as Lambda expects (``invocations`` stops after that many, for tests). A response the
    Runtime API refuses (too large, a stale request id) fails that invocation only: the loaded model
    stays for the next one rather than the environment being reset.
    """
    api = api or RuntimeApi()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Mangum runs the buffered invocations on this same loop
    done = 0
    try:
        while invocations is None or done < invocations:
            invocation = api.next()
            done += 1
            if invocation.trace_id:
                os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
            try:
                if is_streamable(invocation.event):
                    loop.run_until_complete(stream_invocation(app, api, invocation))
                else:
                    _buffered(handler, api, invocation)
            except (RuntimeApiError, OSError) as exc:
                log.error("the Runtime API refused invocation %s's result: %s", invocation.request_id, exc)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _buffered(handler: Handler, api: RuntimeApi, invocation: Invocation) -> None:
    try:
        result = handler(invocation.event, invocation.context())
    except Exception as exc:  # noqa: BLE001 - the invocation fails, the runtime goes on
        log.exception("invocation failed", exc_info=exc)
        api.error(invocation.request_id, exc)
        return
    api.respond(invocation.request_id, result)


def run(load: Callable[[], tuple[ASGIApp, Handler]]) -> None:
    """Entry point of the custom runtime: ``load()`` builds the app (init), then :func:`serve`.

    An init failure is posted to ``/runtime/init/error`` and the process exits, as Lambda expects.
    """
    api = RuntimeApi()
    try:
        app, handler = load()
    except Exception as exc:  # noqa: BLE001 - reported to Lambda, which ends this environment
        log.exception("init failed", exc_info=exc)
        api.init_error(exc)
        sys.exit(1)
    serve(app, handler, api)
