"""OpenAI-compatible routes, as Ollama offers them: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models`` and ``/v1/models/{model}``.

Each route translates its request into the Ollama request the inference services take, runs the
same service as the ``/api`` route, and translates the events back (``services/openai_compat``).
Errors on these routes, and only these, use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``: :class:`OpenAIRoute` is that one place.
Streams are server-sent events ending in ``data: [DONE]``; an error after the first event is sent
as one ``data: {"error": ...}`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from ...composition import Services
from ...errors import SkyllamaError
from ...services import inference
from ...services import openai_compat as compat
from ...services.scheduler import Scheduler
from ...timefmt import rfc3339
from ..deps import services
from ..errors import _validation_message
from ..inference_types import ChatRequest, EmbedRequest, GenerateRequest
from ..ndjson import error_message, in_thread
from ..openai_types import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .inference import _Closing, _until_disconnect, scheduler

log = logging.getLogger(__name__)
Event = dict[str, Any]
SSE = "text/event-stream"


def openai_error(status: int, message: str) -> JSONResponse:
    """An error response in OpenAI's shape (``invalid_request_error``, ``not_found_error``, ``api_error``)."""
    return JSONResponse(compat.error_body(status, message), status_code=status)


def _status(exc: BaseException) -> int:
    return exc.status if isinstance(exc, SkyllamaError) else 500


class OpenAIRoute(APIRoute):
    """A route whose errors (bad bodies included) are answered in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SkyllamaError as exc:
                return openai_error(exc.status, exc.message)
            except RequestValidationError as exc:
                return openai_error(400, _validation_message(exc))
            except ValidationError as exc:
                return openai_error(400, _validation_message(RequestValidationError(exc.errors())))
            except Exception as exc:  # noqa: BLE001 - a bug: logged, answered without details
                log.exception("unexpected error", exc_info=exc)
                return openai_error(500, "internal server error")

        return route_handler


router = APIRouter(route_class=OpenAIRoute)


async def _sse(request: Request, events: AsyncGenerator[Event, None],
               translate: Callable[[Event], list[Event]]) -> Response:
    """Stream ``events`` as SSE chunks; an error before the first event gets a real status.

    The final event's token counts go to ``request.state.tokens`` for metering, since the chunks
    carry ``usage`` only when the client asked for it (``stream_options.include_usage``).
    """
    try:
        first: Event | None = await events.__anext__()
    except StopAsyncIteration:
        first = None

    def chunks(event: Event) -> list[Event]:
        if event.get("done"):
            request.state.tokens = (int(event.get("prompt_eval_count") or 0), int(event.get("eval_count") or 0))
        return translate(event)

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                for chunk in chunks(first):
                    yield compat.sse(chunk)
            async for event in events:
                for chunk in chunks(event):
                    yield compat.sse(chunk)
        except Exception as exc:  # noqa: BLE001 - the stream has begun: report in-band
            yield compat.sse(compat.error_body(_status(exc), error_message(exc)))
            return
        yield compat.sse("[DONE]")

    return _Closing(StreamingResponse(body(), media_type=SSE), events)


async def _collect(request: Request, events: AsyncGenerator[Event, None]) -> list[Event]:
    return [event async for event in _until_disconnect(request, events)]


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, svc: Services = Depends(services),
                           sched: Scheduler = Depends(scheduler)) -> Response:
    req = ChatRequest.model_validate(compat.from_chat_request(body))
    cid = compat.new_id("chatcmpl")
    events = cast(AsyncGenerator[Event, None], inference.chat(svc.catalog, sched, req))
    if not body.stream:
        merged = inference.merge_chat(await _collect(request, events))
        return JSONResponse(compat.to_chat_completion(cid, merged))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _sse(request, events, compat.ChatStream(cid, include_usage).chunks)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, svc: Services = Depends(services),
                      sched: Scheduler = Depends(scheduler)) -> Response:
    req = GenerateRequest.model_validate(compat.from_completion_request(body))
    cid = compat.new_id("cmpl")
    events = cast(AsyncGenerator[Event, None], inference.generate(svc.catalog, sched, req))
    if not body.stream:
        merged = inference.merge_generate(await _collect(request, events))
        return JSONResponse(compat.to_completion(cid, merged))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _sse(request, events, lambda event: compat.completion_chunks(cid, event, include_usage))


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, svc: Services = Depends(services),
                     sched: Scheduler = Depends(scheduler)) -> Response:
    req = EmbedRequest.model_validate(compat.from_embedding_request(body))
    result = await inference.embed(svc.catalog, sched, req)
    return JSONResponse(compat.to_embedding_list(body.model, result, body.encoding_format))


@router.get("/v1/models")
async def list_models(svc: Services = Depends(services)) -> Response:
    return JSONResponse(compat.to_model_list(await in_thread(svc.catalog.list_models)))


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, svc: Services = Depends(services)) -> Response:
    found = await in_thread(svc.catalog.get, model)
    return JSONResponse(compat.to_model(model, rfc3339(found.modified_at)))
