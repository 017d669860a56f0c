"""Inference, Ollama's front: ``/api/generate``, ``/api/chat``, ``/api/embed``, ``/api/embeddings``,
``/api/ps``. Wire requests become the service's commands; its events become Ollama's chunks
(:func:`generate_chunk`, :func:`chat_chunk`), which the OpenAI and Anthropic fronts read too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...errors import BadRequest, ModelNotFound
from ...services.inference.commands import (
    Chat,
    Done,
    Embed,
    Event,
    Generate,
    LegacyEmbed,
    Piece,
    Rendered,
    Result,
)
from ...timefmt import now_rfc3339
from ..deps import CancelHandle, Inf, Rt, Who
from ..inference_types import ChatRequest, EmbeddingsRequest, GenerateRequest, OllamaEmbedRequest
from ..ndjson import NDJSON, error_line, line
from ..streaming import stream, until_disconnect

router = APIRouter()
Chunk = dict[str, Any]


# -- wire to commands -------------------------------------------------------------------------------

def generate_command(req: GenerateRequest, who: Any, handle: Any) -> Generate:
    if not req.model:
        raise ModelNotFound("model '' not found")  # Ollama's text and status for generate
    return Generate(model=req.model, caller=who, options=req.options, keep_alive=req.keep_alive, cancel=handle,
                    format=req.format, think=req.think, truncate=req.truncate, shift=req.shift,
                    logprobs=bool(req.logprobs), top_logprobs=req.top_logprobs or 0, prompt=req.prompt,
                    suffix=req.suffix, system=req.system, template=req.template, context=req.context, raw=req.raw,
                    images=list(req.images or []))


def chat_command(req: ChatRequest, who: Any, handle: Any) -> Chat:
    if not req.model:
        raise BadRequest("model is required")  # Ollama's text and status for chat
    return Chat(model=req.model, caller=who, options=req.options, keep_alive=req.keep_alive, cancel=handle,
                format=req.format, think=req.think, truncate=req.truncate, shift=req.shift,
                logprobs=bool(req.logprobs), top_logprobs=req.top_logprobs or 0,
                messages=[m.model_dump(exclude_none=True) for m in req.messages or []], tools=req.tools)


# -- events to Ollama's chunks ------------------------------------------------------------------------

def _timings(done: Done) -> Chunk:
    out: Chunk = {"done_reason": done.reason}
    if done.timings is not None:
        t = done.timings
        out.update(total_duration=t.total, load_duration=t.load, prompt_eval_count=t.prompt_eval_count,
                   prompt_eval_duration=t.prompt_eval, eval_count=t.eval_count, eval_duration=t.eval)
    return out


def _extra(piece: Piece, *, thinking: bool = True) -> Chunk:
    out: Chunk = {}
    if thinking and piece.thinking:
        out["thinking"] = piece.thinking
    if piece.logprobs:
        out["logprobs"] = list(piece.logprobs)
    return out


def generate_chunk(model: str, event: Event) -> Chunk:
    """An ``/api/generate`` line."""
    piece = event.last if isinstance(event, Done) else event
    chunk: Chunk = {"model": model, "created_at": now_rfc3339(), "response": piece.text, **_extra(piece)}
    if not isinstance(event, Done):
        return {**chunk, "done": False}
    chunk.update(done=True, **_timings(event))
    if event.context is not None:
        chunk["context"] = event.context
    return chunk


def _message(piece: Piece) -> Chunk:
    message: Chunk = {"role": "assistant", "content": piece.text}
    if piece.thinking:
        message["thinking"] = piece.thinking
    if piece.tool_calls:
        message["tool_calls"] = list(piece.tool_calls)
    return message


def chat_chunk(model: str, event: Event) -> Chunk:
    """An ``/api/chat`` line."""
    piece = event.last if isinstance(event, Done) else event
    chunk: Chunk = {"model": model, "created_at": now_rfc3339(), "message": _message(piece),
                    **_extra(piece, thinking=False)}
    if not isinstance(event, Done):
        return {**chunk, "done": False}
    return {**chunk, "done": True, **_timings(event)}


def generate_result(model: str, result: Result) -> Chunk:
    """``stream: false``: the whole generation in one object."""
    return generate_chunk(model, Done(result.done.reason, Piece(result.text, result.thinking,
                                                               logprobs=tuple(result.logprobs)),
                                      result.done.timings, result.done.context))


def chat_result(model: str, result: Result) -> Chunk:
    return chat_chunk(model, Done(result.done.reason, Piece(result.text, result.thinking, tuple(result.tool_calls),
                                                            tuple(result.logprobs)), result.done.timings))


async def _serve(request: Request, events: AsyncGenerator[Event, None], stream_on: bool | None,
                 chunk: Callable[[Event], Chunk], whole: Callable[[Result], Chunk]) -> Response:
    if stream_on is False:
        return JSONResponse(whole(Result.of([e async for e in until_disconnect(request, events)])))
    return await stream(request, events, lambda event: [line(chunk(event))], error_line, NDJSON)


def debug_info(rendered: Rendered) -> Chunk:
    """Ollama's ``_debug_info``: the rendered prompt (and how many images it refers to)."""
    info: Chunk = {"rendered_template": rendered.prompt}
    if rendered.image_count:
        info["image_count"] = rendered.image_count
    return info


@router.post("/api/generate")
async def generate(req: GenerateRequest, request: Request, inference: Inf, who: Who, handle: CancelHandle) -> Response:
    if req.debug_render_only and (req.prompt or req.suffix):  # one object, streamed or not, as Ollama
        rendered = await inference.render(generate_command(req, who, handle))
        return JSONResponse({"model": req.model, "created_at": now_rfc3339(), "response": "", "done": False,
                             "_debug_info": debug_info(rendered)})
    events = inference.generate(generate_command(req, who, handle))
    return await _serve(request, events, req.stream, lambda e: generate_chunk(req.model, e),
                        lambda r: generate_result(req.model, r))


@router.post("/api/chat")
async def chat(req: ChatRequest, request: Request, inference: Inf, who: Who, handle: CancelHandle) -> Response:
    if req.debug_render_only and req.messages:
        rendered = await inference.render(chat_command(req, who, handle))
        return JSONResponse({"model": req.model, "created_at": now_rfc3339(), "message": {"role": "", "content": ""},
                             "done": False, "_debug_info": debug_info(rendered)})
    events = inference.chat(chat_command(req, who, handle))
    return await _serve(request, events, req.stream, lambda e: chat_chunk(req.model, e),
                        lambda r: chat_result(req.model, r))


def embed_inputs(raw: str | list[str] | None) -> list[str]:
    if isinstance(raw, str):
        return [raw] if raw else []
    return list(raw or [])


def ollama_embed_inputs(req: OllamaEmbedRequest) -> list[str]:
    """``/api/embed``'s checks in Ollama's order: the model named (404), then ``input``'s type."""
    if not req.model:
        raise ModelNotFound("model '' not found")
    raw = req.input
    if raw is not None and not isinstance(raw, str) and not (
            isinstance(raw, list) and all(isinstance(item, str) for item in raw)):
        raise BadRequest("invalid input type")
    return embed_inputs(raw)


@router.post("/api/embed", response_model=None)
async def embed(req: OllamaEmbedRequest, inference: Inf, who: Who) -> JSONResponse:
    inputs = ollama_embed_inputs(req)
    result = await inference.embed(Embed(model=req.model, caller=who, options=req.options, keep_alive=req.keep_alive,
                                         inputs=inputs, truncate=req.truncate,
                                         dimensions=req.dimensions))
    if not result.vectors and not inputs:
        return JSONResponse({"model": req.model, "embeddings": []})
    # JSONResponse skips FastAPI's jsonable_encoder, which took twice json.dumps's time on 512 vectors.
    return JSONResponse({"model": req.model, "embeddings": result.vectors, "total_duration": result.total,
                         "load_duration": result.load, "prompt_eval_count": result.prompt_eval_count})


@router.post("/api/embeddings")
async def embeddings(req: EmbeddingsRequest, inference: Inf, who: Who) -> dict[str, Any]:
    if not req.model:
        raise BadRequest("model is required")  # Ollama's text and status for embeddings
    vector = await inference.legacy_embed(LegacyEmbed(model=req.model, caller=who, options=req.options,
                                                      keep_alive=req.keep_alive, prompt=req.prompt))
    return {"embedding": vector}


@router.get("/api/ps")
async def ps(rt: Rt, who: Who) -> dict[str, Any]:
    """This process's runners; with fleet records on, every instance's (no scheduler needed)."""
    if rt.fleet is not None:
        rows = await asyncio.to_thread(rt.fleet.rows)
    else:
        rows = rt.scheduler.ps() if rt.scheduler is not None else []
    return {"models": rt.ownership.filter_visible(who, rows)}
