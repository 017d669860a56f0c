"""Anthropic Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``
(translation in ``http/anthropic/compat.py``).

Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` (``http/errors.py``
picks it for this path); streams are server-sent events (``message_start`` ... ``message_stop``)
through the shared stream layer (``http/streaming.py``); an error after the first event is sent
as an ``error`` event.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ...errors import BadRequest, SkyllamaError
from ...services.inference.commands import Chat, Done, Event, Piece
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


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise BadRequest(f"invalid request body: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid request body: body must be an object")
    return body


def _command(body: dict[str, Any], who: Any, handle: Any, *, count_only: bool = False) -> Chat:
    """The chat command for a Messages body: thinking a model lacks is dropped (Ollama's
    ``relax_thinking`` for Anthropic clients such as Claude Code), not refused."""
    try:
        chat = ChatRequest.model_validate(compat.to_chat(body, count_only=count_only))
    except ValidationError as e:
        raise BadRequest(str(e.errors()[0].get("msg", "invalid request"))) from None
    return dataclasses.replace(chat_command(chat, who, handle), relax_think=True)


def _chunk(model: str, event: Event) -> dict[str, Any]:
    """Ollama's chat chunk plus what Anthropic reports and Ollama's chunk lacks: the prompt's
    token count (first piece) and the stop sequence that ended it (last)."""
    chunk = chat_chunk(model, event)
    if isinstance(event, Piece) and event.prompt_tokens is not None:
        chunk["prompt_tokens"] = event.prompt_tokens
    if isinstance(event, Done) and event.stop_sequence:
        chunk["stop_sequence"] = event.stop_sequence
    return chunk


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, inference: Inf, who: Who, handle: CancelHandle) -> Response:
    """The prompt's token count, as the model's template renders and its tokenizer counts it."""
    try:
        rendered = await inference.render(_command(await _body(request), who, handle, count_only=True))
    except SkyllamaError as e:
        return _error(e.status, e.message)
    return JSONResponse({"input_tokens": rendered.tokens})


@router.post("/v1/messages")
async def messages(request: Request, inference: Inf, who: Who, handle: CancelHandle) -> Response:
    try:
        body = await _body(request)
        command = _command(body, who, handle)
    except SkyllamaError as e:
        return _error(e.status, e.message)
    model = body["model"]
    events = inference.chat(command)
    if not body.get("stream"):
        chunks = [_chunk(command.model, event) async for event in until_disconnect(request, events)]
        return JSONResponse(compat.message_from(chunks, model))

    async def translated() -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        async def ollama() -> AsyncIterator[dict[str, Any]]:
            async for event in events:
                yield _chunk(command.model, event)

        try:
            async for pair in compat.stream_from(ollama(), model):
                yield pair
        finally:
            await events.aclose()

    def error_line(exc: BaseException) -> bytes:
        status = exc.status if isinstance(exc, SkyllamaError) else 500
        return _sse("error", compat.error_body(status, error_message(exc)))

    return await stream(request, translated(), lambda pair: [_sse(*pair)], error_line, "text/event-stream")
