"""``X-Request-Id`` on every request: a valid incoming id is echoed, otherwise one is made.

The id (at most 128 characters of ``[A-Za-z0-9._-]``) is put in ``scope["state"]["request_id"]``
and on the response, and the request is registered with the cancel registry
(``services/inference/cancel.py``) for as long as it is served, its handle in
``scope["state"]["cancel"]``, so ``DELETE /api/requests/{id}`` can stop it.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..services.inference.cancel import CancelRegistry

HEADER = b"x-request-id"
VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == HEADER:
            text = value.decode("latin-1").strip()
            return text if VALID.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    """Names every HTTP request and registers it as cancellable while it runs."""

    def __init__(self, app: ASGIApp, cancels: CancelRegistry) -> None:
        self.app = app
        self.cancels = cancels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        raw_id = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, raw_id)]}
            await send(message)

        handle = self.cancels.open(request_id, state)
        state["cancel"] = handle
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.cancels.close(handle)
