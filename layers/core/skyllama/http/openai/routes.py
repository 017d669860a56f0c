"""OpenAI-compatible routes, as Ollama offers them: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/responses``, ``/v1/models`` and ``/v1/models/{model}``.

Each route translates its request into the Ollama request the inference services take, runs the
same service as the ``/api`` route, and translates the events back (``http/openai/compat.py``).
Errors on these routes, and only these, use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``: :class:`OpenAIRoute` is that one place.
Streams are server-sent events ending in ``data: [DONE]``; an error after the first event is sent
as one ``data: {"error": ...}`` event. The Responses API streams named events (``event: <type>``)
from ``response.created`` to ``response.completed``, without ``[DONE]``; a late error is an
``error`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from ...errors import SkyllamaError
from ...services.inference.commands import Embed, Event, Result
from ...timefmt import rfc3339
from ..deps import CancelHandle, Inf, Rt, Who
from ..errors import _validation_message
from ..inference_types import ChatRequest, EmbedRequest, GenerateRequest
from ..ndjson import in_thread
from ..routes.inference import (
    chat_chunk,
    chat_command,
    chat_result,
    debug_info,
    embed_inputs,
    generate_chunk,
    generate_command,
    generate_result,
)
from ..streaming import error_message, stream, until_disconnect
from . import compat as compat
from . import responses as responses
from .types import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ResponsesRequest

log = logging.getLogger(__name__)
Chunk = dict[str, Any]
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


async def _sse(request: Request, events: AsyncGenerator[Event, None], ollama: Callable[[Event], Chunk],
               translate: Callable[[Chunk], list[Chunk]]) -> Response:
    """Stream ``events`` as SSE chunks (through Ollama's chunk, which the translation reads).

    The final event's token counts go to ``request.state.tokens`` for metering, since the chunks
    carry ``usage`` only when the client asked for it (``stream_options.include_usage``).
    """
    def encode(event: Event) -> list[bytes]:
        chunk = ollama(event)
        if chunk.get("done"):
            request.state.tokens = (int(chunk.get("prompt_eval_count") or 0), int(chunk.get("eval_count") or 0))
        return [compat.sse(c) for c in translate(chunk)]

    def error_line(exc: BaseException) -> bytes:
        return compat.sse(compat.error_body(_status(exc), error_message(exc)))

    return await stream(request, events, encode, error_line, SSE, end=compat.sse("[DONE]"))


async def _result(request: Request, events: AsyncGenerator[Event, None]) -> Result:
    return Result.of([event async for event in until_disconnect(request, events)])


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, inference: Inf, who: Who,
                           handle: CancelHandle) -> Response:
    req = ChatRequest.model_validate(compat.from_chat_request(body))
    cid = compat.new_id("chatcmpl")
    if req.debug_render_only:  # the whole (empty) completion with `_debug_info`, streamed or not
        rendered = await inference.render(chat_command(req, who, handle))
        return JSONResponse(compat.to_debug_completion(cid, req.model, debug_info(rendered)))
    events = inference.chat(chat_command(req, who, handle))
    if not body.stream:
        merged = chat_result(req.model, await _result(request, events))
        return JSONResponse(compat.to_chat_completion(cid, merged))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _sse(request, events, lambda e: chat_chunk(req.model, e), compat.ChatStream(cid, include_usage).chunks)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, inference: Inf, who: Who,
                      handle: CancelHandle) -> Response:
    req = GenerateRequest.model_validate(compat.from_completion_request(body))
    cid = compat.new_id("cmpl")
    events = inference.generate(generate_command(req, who, handle))
    if not body.stream:
        merged = generate_result(req.model, await _result(request, events))
        return JSONResponse(compat.to_completion(cid, merged))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _sse(request, events, lambda e: generate_chunk(req.model, e),
                      lambda chunk: compat.completion_chunks(cid, chunk, include_usage))


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, inference: Inf, who: Who) -> Response:
    translated = compat.from_embedding_request(body)
    req = EmbedRequest.model_validate(translated)
    result = await inference.embed(Embed(model=req.model, caller=who, options=req.options, keep_alive=req.keep_alive,
                                         inputs=embed_inputs(req.input), truncate=req.truncate,
                                         dimensions=req.dimensions, token_inputs=translated.get("tokens")))
    ollama = {"model": req.model, "embeddings": result.vectors, "prompt_eval_count": result.prompt_eval_count}
    return JSONResponse(compat.to_embedding_list(body.model, ollama, body.encoding_format))


@router.post("/v1/responses")
async def create_response(body: ResponsesRequest, request: Request, inference: Inf, who: Who,
                          handle: CancelHandle) -> Response:
    req = ChatRequest.model_validate(responses.from_request(body))
    rid, item_id = responses.new_ids()
    events = inference.chat(chat_command(req, who, handle))
    if not body.stream:
        merged = chat_result(req.model, await _result(request, events))
        return JSONResponse(responses.to_response(body, rid, item_id, merged))
    converter = responses.ResponsesStream(body, rid, item_id)

    def encode(event: Event) -> list[bytes]:
        chunk = chat_chunk(req.model, event)
        if chunk.get("done"):
            request.state.tokens = (int(chunk.get("prompt_eval_count") or 0), int(chunk.get("eval_count") or 0))
        return [_named(kind, data) for kind, data in converter.events(chunk)]

    def error_line(exc: BaseException) -> bytes:
        return _named(*converter.error(_status(exc), error_message(exc)))

    return await stream(request, events, encode, error_line, SSE)


def _named(kind: str, data: Chunk) -> bytes:
    """One named server-sent event (``event:`` and ``data:`` lines), as the Responses API sends them."""
    return f"event: {kind}\n".encode() + compat.sse(data)


@router.get("/v1/models")
async def list_models(rt: Rt, who: Who) -> Response:
    return JSONResponse(compat.to_model_list(await in_thread(rt.catalog.list_models, who)))


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, rt: Rt, who: Who) -> Response:
    found = await in_thread(rt.catalog.get, model, who)
    return JSONResponse(compat.to_model(model, rfc3339(found.modified_at)))
