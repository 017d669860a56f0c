"""The one place where errors become HTTP responses: ``{"error": "..."}`` with the right status.

Services raise :class:`~skyllama.errors.SkyllamaError` subclasses; anything else is a bug,
logged with its stack and answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SkyllamaError, TooManyRequests
from .anthropic.compat import error_body as anthropic_error
from .go_json import go_decode_error
from .openai.compat import error_body as openai_error

log = logging.getLogger(__name__)


def error_body(message: str, status: int, path: str = "") -> dict[str, Any]:
    """The error object in the shape the route's clients parse: Anthropic's under ``/v1/messages``,
    OpenAI's elsewhere under ``/v1/``, Ollama's ``{"error": "..."}`` for everything else."""
    if path.startswith("/v1/messages"):
        return anthropic_error(status, message)
    if path.startswith("/v1/"):
        return openai_error(status, message)
    return {"error": message}


def error_response(error: SkyllamaError, path: str = "") -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else None
    return JSONResponse(error_body(error.message, error.status, path), status_code=error.status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            # Go's decoder text, as Ollama answers ("unexpected EOF"); FastAPI keeps the refused body
            body = exc.body if isinstance(exc.body, bytes | str) else b""
            return go_decode_error(body.encode() if isinstance(body, str) else body)
        if item.get("type") == "missing" and tuple(item.get("loc", ())) == ("body",):
            return "missing request body"
    parts = []
    for item in exc.errors()[:3]:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SkyllamaError)
    async def _skyllama(request: Request, exc: SkyllamaError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": _validation_message(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        # Ollama (gin) answers unknown paths and wrong methods in plain text.
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"error": "internal server error"}, status_code=500)
