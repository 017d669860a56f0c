"""``Content-Type: application/json; charset=utf-8`` on Ollama's JSON answers, as gin's ``c.JSON``
writes it (some clients match the header whole). The OpenAI and Anthropic fronts under ``/v1/``
keep a bare ``application/json``, as Ollama's middleware there sets it."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = "application/json"
GIN_JSON = "application/json; charset=utf-8"


class JsonCharsetMiddleware:
    """Adds gin's ``charset=utf-8`` to a bare ``application/json`` answer outside ``/v1/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def send_with_charset(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type") == JSON:
                    headers["content-type"] = GIN_JSON
            await send(message)

        await self.app(scope, receive, send_with_charset)
