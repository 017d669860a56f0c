"""Anthropic Messages (``POST /v1/messages``) to and from Ollama chat, as Ollama does it.

Supported: ``system`` as a string or text blocks; ``text``, ``tool_use``, ``tool_result`` and
``thinking`` blocks; ``tools``; ``max_tokens``, ``temperature``, ``top_p``, ``top_k``,
``stop_sequences`` (``stop_reason: "stop_sequence"`` names the one that fired, where Ollama says
``end_turn``); ``thinking`` (``budget_tokens`` accepted, not enforced; asked of a model without
thinking it is dropped, as Ollama's ``relax_thinking``) and ``output_config.effort``. A stream's
``message_start`` reports the prompt's real token count (Ollama sends an estimate, characters / 4);
``/v1/messages/count_tokens`` counts the rendered prompt with the model's tokenizer. Requests are
checked in Ollama's order and words (``model is required``, ``max_tokens is required and must be
positive``, ``messages is required``, a ``tool_use`` block without ``id`` or ``name``). The API
key is not checked against Anthropic (skyllama's own keys apply, sent as ``x-api-key``). Not
supported: images by URL, ``tool_choice``, ``metadata``, prompt caching, server tools
(``web_search``), unknown block types (400; Ollama skips them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ...errors import BadRequest

Event = dict[str, Any]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> Event:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def _think(req: dict[str, Any]) -> bool | str | None:
    """``thinking`` (enabled/disabled) first, else ``output_config.effort``, as Ollama reads them."""
    thinking = req.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind in ("enabled", "disabled"):
        return kind == "enabled"
    config = req.get("output_config")
    effort = str(config.get("effort") or "").strip().lower() if isinstance(config, dict) else ""
    effort = "high" if effort == "xhigh" else effort
    return effort if effort in ("high", "medium", "low", "max") else None


def to_chat(req: dict[str, Any], *, count_only: bool = False) -> dict[str, Any]:
    """The ``/api/chat`` body for an Anthropic Messages request (400 for what cannot be mapped),
    checked in Ollama's order; ``count_only`` (``count_tokens``) needs no ``max_tokens``."""
    if not isinstance(req.get("model"), str) or not req["model"]:
        raise BadRequest("model is required")
    max_tokens = req.get("max_tokens")
    valid_max = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
    if not count_only and not valid_max:
        raise BadRequest("max_tokens is required and must be positive")
    if not isinstance(req.get("messages"), list) or not req["messages"]:
        raise BadRequest("messages is required")
    messages: list[Event] = []
    if req.get("system"):
        messages.append({"role": "system", "content": _text(req["system"])})
    names: dict[str, str] = {}
    for m in req["messages"]:
        if not isinstance(m, dict):
            raise BadRequest("invalid message: must be an object")
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant"):
            raise BadRequest(f"invalid role: {role!r}")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        text, thinking, calls = [], [], []
        for block in content or []:
            if not isinstance(block, dict):
                raise BadRequest("invalid content block: must be an object")
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "thinking":
                thinking.append(block.get("thinking", ""))
            elif kind == "tool_use":
                for field in ("id", "name"):
                    if not block.get(field):
                        raise BadRequest(f"tool_use block missing required '{field}' field")
                names[block["id"]] = block["name"]
                calls.append({"id": block.get("id"), "function": {"name": block.get("name"),
                                                                  "arguments": block.get("input") or {}}})
            elif kind == "tool_result":
                messages.append({"role": "tool", "content": _text(block.get("content")),
                                 "tool_call_id": block.get("tool_use_id"),
                                 "tool_name": names.get(block.get("tool_use_id", ""), "")})
            elif kind == "image":
                source = block.get("source") or {}
                if source.get("type") != "base64":
                    raise BadRequest("only base64 image sources are supported")
                messages.append({"role": role, "content": "", "images": [source.get("data", "")]})
            else:
                raise BadRequest(f"unsupported content block type: {kind!r}")
        if text or thinking or calls:
            msg: Event = {"role": role, "content": "".join(text)}
            if thinking:
                msg["thinking"] = "".join(thinking)
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
    options: Event = {"num_predict": max_tokens} if valid_max else {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                         ("stop", "stop_sequences")):
        if req.get(theirs) is not None:
            options[ours] = req[theirs]
    tools = [{"type": "function", "function": {"name": t.get("name"), "description": t.get("description", ""),
                                               "parameters": t.get("input_schema") or {}}}
             for t in req.get("tools") or []]
    return {"model": req["model"], "messages": messages, "options": options, "tools": tools or None,
            "think": _think(req), "stream": True}


def _stop_reason(final: Event, tool_use: bool) -> str:
    if tool_use:
        return "tool_use"
    if final.get("stop_sequence"):
        return "stop_sequence"
    return "max_tokens" if final.get("done_reason") == "length" else "end_turn"


def _usage(final: Event) -> Event:
    return {"input_tokens": final.get("prompt_eval_count", 0), "output_tokens": final.get("eval_count", 0)}


def message_from(events: list[Event], model: str) -> Event:
    """One Messages response from the chat events."""
    thinking = "".join(e["message"].get("thinking", "") for e in events)
    text = "".join(e["message"].get("content", "") for e in events)
    calls = [c for e in events for c in e["message"].get("tool_calls", [])]
    content: list[Event] = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text:
        content.append({"type": "text", "text": text})
    for call in calls:
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": call["function"]["name"], "input": call["function"]["arguments"]})
    final = events[-1] if events else {}
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _stop_reason(final, bool(calls)),
            "stop_sequence": None if calls else final.get("stop_sequence"), "usage": _usage(final)}


def _start(model: str, first: Event) -> list[tuple[str, Event]]:
    """``message_start`` (with the prompt's token count the first event carries) and a ``ping``."""
    tokens = first.get("prompt_tokens") or first.get("prompt_eval_count") or 0
    return [("message_start", {"type": "message_start", "message": {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": tokens, "output_tokens": 0}}}), ("ping", {"type": "ping"})]


async def stream_from(events: AsyncIterator[Event], model: str) -> AsyncIterator[tuple[str, Event]]:
    """Server-sent ``(event, data)`` pairs, in the order Anthropic sends them; ``message_start``
    once the first event has come (it carries the prompt's token count)."""
    index, open_kind, tool_use, started = -1, "", False, False
    final: Event = {}

    def start(kind: str, block: Event) -> list[tuple[str, Event]]:
        nonlocal index, open_kind
        out = [("content_block_stop", {"type": "content_block_stop", "index": index})] if open_kind else []
        index += 1
        open_kind = kind
        return [*out, ("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": block})]

    async for event in events:
        if not started:
            started = True
            for pair in _start(model, event):
                yield pair
        msg = event.get("message", {})
        if msg.get("thinking"):
            if open_kind != "thinking":
                for pair in start("thinking", {"type": "thinking", "thinking": ""}):
                    yield pair
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "thinking_delta", "thinking": msg["thinking"]}}
        if msg.get("content"):
            if open_kind != "text":
                for pair in start("text", {"type": "text", "text": ""}):
                    yield pair
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": msg["content"]}}
        for call in msg.get("tool_calls", []):
            tool_use = True
            block = {"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                     "name": call["function"]["name"], "input": {}}
            for pair in start("tool_use", block):
                yield pair
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(call["function"]["arguments"])}}
        if event.get("done"):
            final = event
    if not started:
        for pair in _start(model, final):
            yield pair
    if open_kind:
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": _stop_reason(final, tool_use),
                                      "stop_sequence": None if tool_use else final.get("stop_sequence")},
                            "usage": _usage(final)}
    yield "message_stop", {"type": "message_stop"}
