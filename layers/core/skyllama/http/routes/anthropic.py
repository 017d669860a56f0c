"""Anthropic Messages API: ``POST /v1/messages`` (translation in ``services/anthropic_compat``).

Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}``; streams are
server-sent events (``message_start`` ... ``message_stop``); an error after the first event is
sent as an ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from ...composition import Services
from ...errors import SkyllamaError
from ...services import anthropic_compat as compat
from ...services import inference
from ...services.scheduler import Scheduler
from ..deps import services
from ..inference_types import ChatRequest
from .inference import scheduler

router = APIRouter()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(compat.error_body(status, message), status_code=status)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@router.post("/v1/messages")
async def messages(request: Request, svc: Services = Depends(services),
                   sched: Scheduler = Depends(scheduler)) -> Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
    except ValueError as e:
        return _error(400, f"invalid request body: {e}")
    try:
        chat = ChatRequest.model_validate(compat.to_chat(body))
        events = inference.chat(svc.catalog, sched, chat)
        first = await anext(events)
    except SkyllamaError as e:
        return _error(e.status, str(e))
    except ValidationError as e:
        return _error(400, str(e.errors()[0].get("msg", "invalid request")))
    model = body["model"]

    async def replay() -> AsyncIterator[dict[str, Any]]:
        yield first
        async for event in events:
            yield event

    if not body.get("stream"):
        try:
            collected = [event async for event in replay()]
        except SkyllamaError as e:
            return _error(e.status, str(e))
        finally:
            await events.aclose()
        return JSONResponse(compat.message_from(collected, model))

    async def sse() -> AsyncIterator[bytes]:
        try:
            async for name, data in compat.stream_from(replay(), model):
                yield _sse(name, data)
        except SkyllamaError as e:
            yield _sse("error", compat.error_body(e.status, str(e)))
        finally:
            await events.aclose()

    return StreamingResponse(sse(), media_type="text/event-stream")
