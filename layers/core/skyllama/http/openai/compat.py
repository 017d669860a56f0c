"""OpenAI compatibility as pure translations, after Ollama's ``openai/openai.go`` and
``middleware/openai.go``: an OpenAI request becomes the Ollama request the inference services
take (a plain dict), and the services' Ollama events become OpenAI responses or SSE chunks.

Differences from Ollama, on purpose: the text and image parts of one message's content array
stay one message (Ollama splits them into one message per part); intermediate completion
chunks carry no ``usage`` (Ollama sends zeros there when ``include_usage`` is on).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import struct
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ...errors import BadRequest
from ...names import ModelName

Event = dict[str, Any]
FINGERPRINT = "fp_ollama"
IMAGE_PREFIXES = ("data:;base64,",) + tuple(f"data:image/{t};base64," for t in ("jpeg", "jpg", "png", "webp"))
EFFORTS: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "max": "max",
           "xhigh": "max", "ultra": "max"}


def new_id(prefix: str) -> str:
    """Ollama's response ids: ``chatcmpl-<n>`` or ``cmpl-<n>`` with n below 999."""
    return f"{prefix}-{random.randrange(999)}"  # noqa: S311 - an id, not a secret


def error_body(status: int, message: str) -> Event:
    """OpenAI's error object: 400 ``invalid_request_error``, 404 ``not_found_error``, else ``api_error``."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def sse(data: Any) -> bytes:
    """One server-sent event: ``data: <compact json>`` and a blank line (``[DONE]`` as is)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"data: {text}\n\n".encode()


# -- requests ---------------------------------------------------------------------------------------

def _stops(stop: Any, strict: bool) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        if strict and not all(isinstance(s, str) for s in stop):
            bad = next(s for s in stop if not isinstance(s, str))
            raise BadRequest(f"invalid type for 'stop' field: {type(bad).__name__}")
        return [s for s in stop if isinstance(s, str)]
    raise BadRequest(f"invalid type for 'stop' field: {type(stop).__name__}")


def _sampling(req: Any) -> dict[str, Any]:
    """Options shared by chat and completions: OpenAI's defaults of 1.0 for temperature and top_p."""
    options: dict[str, Any] = {}
    max_tokens = req.max_tokens if req.max_tokens is not None else getattr(req, "max_completion_tokens", None)
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = 1.0 if req.temperature is None else req.temperature
    if req.seed is not None:
        options["seed"] = req.seed
    options["top_p"] = req.top_p if req.top_p else 1.0
    return options


def decode_image_url(url: str) -> str:
    """A base64 data URI's payload (checked); remote URLs are refused as Ollama refuses them."""
    if url.startswith(("http://", "https://")):
        raise BadRequest("image URLs are not currently supported, please use base64 encoded data instead")
    prefix = next((p for p in IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise BadRequest("invalid image input")
    payload = url[len(prefix):]
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("invalid image input") from None
    return payload


def _parts(content: list[Any]) -> tuple[str, list[str]]:
    texts, images = [], []
    for part in content:
        if not isinstance(part, dict):
            raise BadRequest("invalid message format")
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("invalid message format")
            images.append(decode_image_url(url))
        else:
            raise BadRequest("invalid message format")
    return "\n".join(texts), images


def _tool_calls(calls: list[Any]) -> list[Event]:
    out = []
    for call in calls:
        if not isinstance(call, dict):
            raise BadRequest("invalid tool call")
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError):
            raise BadRequest("invalid tool call arguments") from None
        out.append({**({"id": call["id"]} if call.get("id") else {}),
                    "function": {"name": fn.get("name", ""), "arguments": arguments}})
    return out


def _tool_name(messages: list[Any], call_id: str) -> str:
    for message in reversed(messages):
        for call in message.tool_calls or []:
            if isinstance(call, dict) and call.get("id") == call_id:
                return str((call.get("function") or {}).get("name", ""))
    return ""


def chat_messages(messages: list[Any]) -> list[Event]:
    """OpenAI messages (``role``, ``content`` as text or parts, ``tool_calls``, ``tool_call_id``)
    as Ollama messages (``images`` base64, ``tool_calls`` with object arguments, ``tool_name``)."""
    out = []
    for message in messages:
        item: Event = {"role": message.role, "content": ""}
        content = message.content
        if isinstance(content, str):
            item["content"] = content
        elif isinstance(content, list):
            item["content"], images = _parts(content)
            if images:
                item["images"] = images
        elif not message.tool_calls:
            raise BadRequest(f"invalid message content type: {type(content).__name__}")
        if message.tool_calls:
            item["tool_calls"] = _tool_calls(message.tool_calls)
        if message.reasoning:
            item["thinking"] = message.reasoning
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        if message.role.lower() == "tool":
            name = message.name or (_tool_name(messages, message.tool_call_id) if message.tool_call_id else "")
            if name:
                item["tool_name"] = name
        out.append(item)
    return out


def response_format(fmt: Any) -> Any:
    """``json_object`` → ``"json"``, ``json_schema`` → its schema, anything else → no format."""
    if not isinstance(fmt, dict):
        return None
    kind = str(fmt.get("type") or "").strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        return fmt["json_schema"].get("schema")
    return None


def think_value(req: Any) -> bool | str | None:
    """``reasoning.effort`` or ``reasoning_effort`` as Ollama's ``think`` (clamped to its tiers)."""
    effort = (req.reasoning or {}).get("effort") if isinstance(req.reasoning, dict) else None
    effort = effort or req.reasoning_effort
    if not effort:
        return None
    if effort not in EFFORTS:
        raise BadRequest(f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", '
                         '"high", "xhigh", "ultra", "max", or "none")')
    return EFFORTS[effort]


def from_chat_request(req: Any) -> Event:
    """``/v1/chat/completions`` → the body of an ``/api/chat`` request."""
    if not req.messages:
        raise BadRequest("[] is too short - 'messages'")
    options = _sampling(req)
    stops = _stops(req.stop, strict=False)
    if stops is not None:
        options["stop"] = stops
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name) is not None:
            options[name] = getattr(req, name)
    body: Event = {"model": req.model, "messages": chat_messages(req.messages), "options": options,
                   "stream": bool(req.stream), "format": response_format(req.response_format),
                   "tools": req.tools or None, "think": think_value(req), "logprobs": bool(req.logprobs),
                   "top_logprobs": req.top_logprobs or 0, "_debug_render_only": req.debug_render_only}
    return body


def from_completion_request(req: Any) -> Event:
    """``/v1/completions`` → the body of an ``/api/generate`` request (one string prompt)."""
    prompt = req.prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("invalid prompt: only a single string prompt is supported")
    options = _sampling(req)
    stops = _stops(req.stop, strict=True)
    if stops is not None:
        options["stop"] = stops
    options["frequency_penalty"] = req.frequency_penalty or 0.0
    options["presence_penalty"] = req.presence_penalty or 0.0
    return {"model": req.model, "prompt": prompt, "suffix": req.suffix or "", "options": options,
            "stream": bool(req.stream)}


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def token_arrays(inputs: Any) -> list[list[int]] | None:
    """OpenAI's token-array ``input`` (``[1, 2]`` or ``[[1, 2], [3]]``) as lists of ids; None
    when ``inputs`` is text. (Ollama answers ``invalid input type`` to these; skyllama embeds them.)"""
    if not isinstance(inputs, list) or not inputs:
        return None
    if all(_is_token(i) for i in inputs):
        return [list(inputs)]
    if all(isinstance(i, list) for i in inputs):
        if not all(i and all(_is_token(t) for t in i) for i in inputs):
            raise BadRequest("invalid input type" if all(inputs) else "invalid input")
        return [list(i) for i in inputs]
    return None


def from_embedding_request(req: Any) -> Event:
    """``/v1/embeddings`` → the body of an ``/api/embed`` request (token arrays under ``tokens``)."""
    fmt = req.encoding_format
    if fmt and fmt.lower() not in ("float", "base64"):
        raise BadRequest(f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].")
    inputs = req.input
    if inputs == "":
        inputs = [""]
    if inputs is None or inputs == [] or not isinstance(inputs, str | list):
        raise BadRequest("invalid input")
    tokens = token_arrays(inputs)
    if tokens is not None:
        return {"model": req.model, "input": None, "tokens": tokens, "dimensions": req.dimensions}
    if isinstance(inputs, list) and not all(isinstance(i, str) for i in inputs):
        raise BadRequest("invalid input type")
    return {"model": req.model, "input": inputs, "dimensions": req.dimensions}


# -- responses --------------------------------------------------------------------------------------

def created_of(event: Event) -> int:
    """The Unix time of an event's ``created_at`` (now when it has none)."""
    stamp = event.get("created_at")
    if isinstance(stamp, str) and stamp:
        try:
            return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return int(time.time())


def usage(event: Event) -> Event:
    prompt, completion = int(event.get("prompt_eval_count") or 0), int(event.get("eval_count") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_calls(calls: Iterable[Event]) -> list[Event]:
    """Ollama tool calls as OpenAI's: ``id``, ``index``, ``type``, arguments as a JSON string."""
    out = []
    for call in calls:
        fn = call.get("function") or {}
        out.append({"id": call.get("id", ""), "index": int(fn.get("index") or 0), "type": "function",
                    "function": {"name": fn.get("name", ""),
                                 "arguments": json.dumps(fn.get("arguments") or {}, separators=(",", ":"))}})
    return out


def to_chat_completion(cid: str, merged: Event) -> Event:
    """A merged ``/api/chat`` result as a ``chat.completion``."""
    message = merged.get("message") or {}
    calls = tool_calls(message.get("tool_calls") or [])
    reason = merged.get("done_reason") or None
    if reason == "stop" and calls:
        reason = "tool_calls"
    out_message: Event = {"role": message.get("role", "assistant"), "content": message.get("content", "")}
    if message.get("thinking"):
        out_message["reasoning"] = message["thinking"]
    if calls:
        out_message["tool_calls"] = calls
    choice: Event = {"index": 0, "message": out_message, "finish_reason": reason}
    if merged.get("logprobs"):
        choice["logprobs"] = {"content": merged["logprobs"]}
    return {"id": cid, "object": "chat.completion", "created": created_of(merged), "model": merged.get("model"),
            "system_fingerprint": FINGERPRINT, "choices": [choice], "usage": usage(merged)}


def to_debug_completion(cid: str, model: str, info: Event) -> Event:
    """``_debug_render_only``: Ollama's empty completion carrying ``_debug_info``."""
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": {"role": "", "content": ""}, "finish_reason": None}],
            "usage": usage({}), "_debug_info": info}


class ChatStream:
    """Turns ``/api/chat`` events into ``chat.completion.chunk`` objects, as Ollama's ChatWriter:
    the role on the first chunk only, one ``created`` for the whole stream, a separate finish
    chunk with an empty delta, then a usage chunk when ``include_usage``."""

    def __init__(self, cid: str, include_usage: bool = False) -> None:
        self.id = cid
        self.include_usage = include_usage
        self.created: int | None = None
        self.first_sent = False
        self.tool_call_sent = False

    def _chunk(self, model: Any, delta: Event, reason: str | None = None, logprobs: Any = None) -> Event:
        choice: Event = {"index": 0, "delta": delta, "finish_reason": reason}
        if logprobs:
            choice["logprobs"] = {"content": logprobs}
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model,
                "system_fingerprint": FINGERPRINT, "choices": [choice]}

    def chunks(self, event: Event) -> list[Event]:
        """The chunks for one event (none for a metrics-only final event after content)."""
        if self.created is None:
            self.created = created_of(event)
        message = event.get("message") or {}
        content, thinking = message.get("content", ""), message.get("thinking", "")
        calls = tool_calls(message.get("tool_calls") or [])
        model = event.get("model")
        logprobs = event.get("logprobs")  # on the event's first chunk, as Ollama's ToStreamChunks
        out = []
        if not (event.get("done") and self.first_sent and not content and not thinking and not calls
                and not logprobs):
            role = {"role": "assistant"} if not self.first_sent else {}
            if thinking and (content or calls):
                out.append(self._chunk(model, {**role, "content": "", "reasoning": thinking}, logprobs=logprobs))
                role = {}
                thinking = ""
                logprobs = None
            delta: Event = {**role, "content": content}
            if thinking:
                delta["reasoning"] = thinking
            if calls:
                delta["tool_calls"] = calls
                self.tool_call_sent = True
            out.append(self._chunk(model, delta, logprobs=logprobs))
            self.first_sent = True
        if event.get("done"):
            reason = event.get("done_reason") or "stop"
            if reason == "stop" and self.tool_call_sent:
                reason = "tool_calls"
            finish = self._chunk(model, {}, reason)
            out.append(finish)
            if self.include_usage:
                out.append({**finish, "choices": [], "usage": usage(event)})
        return out


def to_completion(cid: str, merged: Event) -> Event:
    """A merged ``/api/generate`` result as a ``text_completion``."""
    return {"id": cid, "object": "text_completion", "created": created_of(merged), "model": merged.get("model"),
            "system_fingerprint": FINGERPRINT,
            "choices": [{"text": merged.get("response", ""), "index": 0,
                         "finish_reason": merged.get("done_reason") or None}],
            "usage": usage(merged)}


def completion_chunks(cid: str, event: Event, include_usage: bool = False) -> list[Event]:
    """One ``/api/generate`` event as completion chunks (plus a usage chunk at the end if asked)."""
    chunk = {"id": cid, "object": "text_completion", "created": int(time.time()),
             "choices": [{"text": event.get("response", ""), "index": 0,
                          "finish_reason": event.get("done_reason") or None}],
             "model": event.get("model"), "system_fingerprint": FINGERPRINT}
    out = [chunk]
    if event.get("done") and include_usage:
        out.append({**chunk, "choices": [], "usage": usage(event)})
    return out


def floats_to_base64(vector: list[float]) -> str:
    """Little-endian float32s, base64-encoded (OpenAI's ``encoding_format: base64``)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def to_embedding_list(model: str, result: Event, encoding_format: str | None) -> Event:
    """An ``/api/embed`` result as OpenAI's embedding list."""
    b64 = (encoding_format or "").lower() == "base64"
    data = [{"object": "embedding", "embedding": floats_to_base64(v) if b64 else v, "index": i}
            for i, v in enumerate(result.get("embeddings") or [])]
    count = int(result.get("prompt_eval_count") or 0)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": count, "total_tokens": count}}


def owned_by(name: str) -> str:
    """The namespace of a model name (``library`` for the default one)."""
    try:
        return ModelName.parse(name).namespace
    except BadRequest:
        return "library"


def to_model(name: str, modified_at: str | None) -> Event:
    """One ``/v1/models`` entry: ``created`` is the model's modified time."""
    return {"id": name, "object": "model", "created": created_of({"created_at": modified_at}),
            "owned_by": owned_by(name)}


def to_model_list(models: list[Event]) -> Event:
    """``/api/tags`` entries as ``/v1/models``."""
    return {"object": "list",
            "data": [to_model(m.get("model") or m.get("name", ""), m.get("modified_at")) for m in models]}
