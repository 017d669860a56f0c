"""Anthropic Messages API: ``POST /v1/messages`` (translation in ``http/anthropic/compat.py``).

Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` (``http/errors.py``
picks it for this path); streams are server-sent events (``message_start`` ... ``message_stop``)
through the shared stream layer (``http/streaming.py``); an error after the first event is sent
as an ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ...errors import SkyllamaError
from ..deps import CancelHandle, Inf, Who
from ..inference_types import ChatRequest
from ..routes.inference import chat_chunk, chat_command
from ..streaming import error_message, stream, until_disconnect
from . import compat as compat

router = APIRouter()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(compat.error_body(status, message), status_code=status)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@router.post("/v1/messages")
async def messages(request: Request, inference: Inf, who: Who, handle: CancelHandle) -> Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
    except ValueError as e:
        return _error(400, f"invalid request body: {e}")
    try:
        chat = ChatRequest.model_validate(compat.to_chat(body))
    except ValidationError as e:
        return _error(400, str(e.errors()[0].get("msg", "invalid request")))
    model = body["model"]
    events = inference.chat(chat_command(chat, who, handle))
    if not body.get("stream"):
        chunks = [chat_chunk(chat.model, event) async for event in until_disconnect(request, events)]
        return JSONResponse(compat.message_from(chunks, model))

    async def translated() -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        async def ollama() -> AsyncIterator[dict[str, Any]]:
            async for event in events:
                yield chat_chunk(chat.model, event)

        try:
            async for pair in compat.stream_from(ollama(), model):
                yield pair
        finally:
            await events.aclose()

    def error_line(exc: BaseException) -> bytes:
        status = exc.status if isinstance(exc, SkyllamaError) else 500
        return _sse("error", compat.error_body(status, error_message(exc)))

    return await stream(request, translated(), lambda pair: [_sse(*pair)], error_line, "text/event-stream")
