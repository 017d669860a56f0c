"""OpenAI's Responses API (``POST /v1/responses``) to and from Ollama chat, after Ollama's
``openai/responses.go`` and ``middleware/openai.go`` (v0.13.3 on).

A request becomes an ``/api/chat`` body: ``instructions`` a system message first, a string
``input`` one user message, a list of input items messages (``message`` or the ``{role,
content}`` shorthand), ``function_call`` items an assistant's tool calls and
``function_call_output`` items tool messages, ``reasoning`` items the next assistant message's
thinking. The chat's result becomes a ``response`` object, or, streamed, the event sequence from
``response.created`` to ``response.completed``, each with its ``sequence_number``.

As in Ollama: ``tool_choice``, ``previous_response_id``, ``store`` and ``conversation`` are
ignored (nothing is stored); a response with tool calls has no message item; ``file`` inputs
and image URLs are refused. Ollama's built-in ``web_search`` tool is not offered (it proxies
ollama.com): a ``web_search`` tool is refused rather than passed to the model as a function.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from ...errors import BadRequest
from .compat import EFFORTS, decode_image_url, tool_calls

Event = dict[str, Any]
REASONING_ERROR = ('invalid reasoning value: "{}" (must be "minimal", "low", "medium", "high", "xhigh", '
                   '"ultra", "max", or "none")')


def new_ids() -> tuple[str, str]:
    """A response id and its message item's id, as Ollama makes them (``resp_<n>``, ``msg_<n>``)."""
    return f"resp_{random.randrange(999999)}", f"msg_{random.randrange(999999)}"  # noqa: S311 - ids


# -- requests ---------------------------------------------------------------------------------------

def _content(content: Any, where: str) -> tuple[str, list[str]]:
    """A message's or a tool output's content (a string or content items) as text and images."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or array")
    text, images = "", []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text += str(part.get("text") or "")
        elif kind == "input_image":
            if part.get("image_url"):  # a file_id alone is skipped, as Ollama does
                images.append(decode_image_url(str(part["image_url"])))
        elif kind == "input_file":
            raise BadRequest("file inputs are not currently supported")
        else:
            raise BadRequest(f"{where}[{i}]: unknown content type: {kind or ''}")
    return text, images


def _arguments(raw: Any) -> Any:
    if raw in (None, ""):
        return {}
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise BadRequest(f"failed to parse function call arguments: {exc}") from None


def _answers_last_call(message: Event, following: Any, messages: list[Event]) -> bool:
    """An assistant message replayed between a ``function_call`` and its ``function_call_output``."""
    if message["role"] != "assistant" or not messages or messages[-1]["role"] != "assistant":
        return False
    if not isinstance(following, dict) or following.get("type") != "function_call_output":
        return False
    return any(call["id"] == following.get("call_id") for call in messages[-1].get("tool_calls", []))


def _items(items: list[Any]) -> list[Event]:
    """Input items as Ollama messages (Ollama's ``FromResponsesRequest``)."""
    messages: list[Event] = []
    thinking = ""  # a reasoning item's text, for the next assistant message
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"input[{i}]: input item must be an object")
        kind = item.get("type") or ("message" if item.get("role") else "")
        if kind == "reasoning":
            thinking = str(item.get("encrypted_content") or "")
        elif kind == "message":
            text, images = _content(item.get("content"), f"input[{i}]: content")
            role = item.get("role") or ""
            # OpenAI's "developer" is the system role of its newer models; templates know "system"
            message: Event = {"role": "system" if role == "developer" else role, "content": text}
            if images:
                message["images"] = images
            if message["role"] == "assistant" and thinking:
                message["thinking"], thinking = thinking, ""
            if _answers_last_call(message, items[i + 1] if i + 1 < len(items) else None, messages):
                last = messages[-1]  # the tool result must follow the call it answers: one message
                last["content"] = "\n".join(t for t in (last["content"], text) if t)
                if images:
                    last.setdefault("images", []).extend(images)
                if message.get("thinking"):
                    last["thinking"] = message["thinking"]
                continue
            messages.append(message)
        elif kind == "function_call":
            call = {"id": item.get("call_id") or "",
                    "function": {"name": item.get("name") or "", "arguments": _arguments(item.get("arguments"))}}
            if messages and messages[-1]["role"] == "assistant":  # parallel calls: one assistant message
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            if thinking:
                messages[-1]["thinking"], thinking = thinking, ""
        elif kind == "function_call_output":
            text, images = _content(item.get("output"), f"input[{i}]: output")
            message = {"role": "tool", "content": text, "tool_call_id": item.get("call_id") or ""}
            if images:
                message["images"] = images
            messages.append(message)
        elif not kind:
            raise BadRequest(f"input[{i}]: input item missing required 'type' field")
        else:
            raise BadRequest(f'input[{i}]: unknown input item type: "{kind}"')
    if thinking:
        messages.append({"role": "assistant", "content": "", "thinking": thinking})
    return messages


def _tools(tools: list[Any]) -> list[Event]:
    """Responses tools (flat ``name``/``parameters``; ``namespace`` groups) as Ollama's."""
    out: list[Event] = []
    for tool in tools:
        if not isinstance(tool, dict):
            raise BadRequest("invalid tool")
        kind = tool.get("type")
        if kind == "namespace":  # members with namespace-qualified names, as Ollama expands them
            prefix = f"{tool.get('name')}." if tool.get("name") else ""
            for member in _tools(tool.get("tools") or []):
                name = member["function"]["name"]
                if prefix and not name.startswith(prefix):
                    member["function"]["name"] = prefix + name
                out.append(member)
        elif kind == "function":
            out.append({"type": "function", "function": {
                "name": tool.get("name") or "", "description": tool.get("description") or "",
                "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}})
        else:  # web_search and the other built-in tools run on OpenAI's (or ollama.com's) side
            raise BadRequest(f"tool type {kind!r} is not supported: only function tools")
    return out


def from_request(req: Any) -> Event:
    """``/v1/responses`` → the body of an ``/api/chat`` request (400 for what does not map)."""
    messages: list[Event] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        if req.input:
            messages.append({"role": "user", "content": req.input})
    elif isinstance(req.input, list):
        messages += _items(req.input)
    elif req.input is not None:
        raise BadRequest("input must be a string or array")
    options: Event = {"temperature": 1.0 if req.temperature is None else req.temperature}
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    effort = (req.reasoning or {}).get("effort") or ""
    if effort and effort not in EFFORTS:
        raise BadRequest(REASONING_ERROR.format(effort))
    fmt = (req.text or {}).get("format") or {}
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    return {"model": req.model, "messages": messages, "options": options, "tools": _tools(req.tools or []) or None,
            "format": schema, "think": EFFORTS[effort] if effort else None, "stream": bool(req.stream)}


# -- responses --------------------------------------------------------------------------------------

def _echo(req: Any, rid: str, status: str, output: list[Event], usage: Event | None) -> Event:
    """The response object, echoing the request's settings as Ollama's does."""
    reasoning = None
    effort, summary = (req.reasoning or {}).get("effort"), (req.reasoning or {}).get("summary")
    if effort or summary:
        reasoning = {"effort": effort or None, "summary": summary or None}
    fmt = (req.text or {}).get("format")
    return {"id": rid, "object": "response", "created_at": int(time.time()), "completed_at": None,
            "status": status, "incomplete_details": None, "model": req.model, "previous_response_id": None,
            "instructions": req.instructions or None, "output": output, "error": None,
            "tools": list(req.tools or []), "tool_choice": "auto", "truncation": req.truncation or "disabled",
            "parallel_tool_calls": True, "text": {"format": fmt if isinstance(fmt, dict) else {"type": "text"}},
            "top_p": 1.0 if req.top_p is None else req.top_p, "presence_penalty": 0, "frequency_penalty": 0,
            "top_logprobs": 0, "temperature": 1.0 if req.temperature is None else req.temperature,
            "reasoning": reasoning, "usage": usage, "max_output_tokens": req.max_output_tokens,
            "max_tool_calls": None, "store": False, "background": bool(req.background), "service_tier": "default",
            "metadata": {}, "safety_identifier": None, "prompt_cache_key": None}


def _usage(final: Event) -> Event:
    prompt, output = int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)
    return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def _text_part(text: str) -> Event:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> Event:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [_text_part(text)] if status == "completed" else []}


def _reasoning_item(item_id: str, thinking: str) -> Event:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": thinking}],
            "encrypted_content": thinking}


def _call_item(item_id: str, call: Event, status: str = "completed") -> Event:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call["id"],
            "name": call["function"]["name"], "arguments": call["function"]["arguments"] if status == "completed"
            else ""}


def to_response(req: Any, rid: str, item_id: str, merged: Event) -> Event:
    """A merged ``/api/chat`` result as a ``response`` (Ollama's ``ToResponse``)."""
    message = merged.get("message") or {}
    output: list[Event] = []
    if message.get("thinking"):
        output.append(_reasoning_item(f"rs_{rid}", message["thinking"]))
    calls = tool_calls(message.get("tool_calls") or [])
    if calls:  # as Ollama: the text around tool calls is not returned
        output += [_call_item(f"fc_{rid}_{i}", call) for i, call in enumerate(calls)]
    else:
        output.append(_message_item(item_id, message.get("content", "")))
    response = _echo(req, rid, "completed", output, _usage(merged))
    response["completed_at"] = int(time.time())
    return response


class ResponsesStream:
    """``/api/chat`` chunks → ``(event, data)`` pairs (Ollama's ``ResponsesStreamConverter``)."""

    def __init__(self, req: Any, rid: str, item_id: str) -> None:
        self.req, self.rid, self.item_id = req, rid, item_id
        self.sequence = 0
        self.started = False
        self.output_index = 0
        self.text: str | None = None  # the open message item's text
        self.thinking: str | None = None  # the open reasoning item's text
        self.reasoning_id = ""
        self.calls_sent = False
        self.completed: list[Event] = []

    def _event(self, kind: str, **data: Any) -> tuple[str, Event]:
        event = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return kind, event

    def error(self, status: int, message: str) -> tuple[str, Event]:
        """An ``error`` event ending a stream that already began."""
        code = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return self._event("error", code=code, message=message, param=None)

    def _finish_reasoning(self) -> list[tuple[str, Event]]:
        if self.thinking is None:
            return []
        item = _reasoning_item(self.reasoning_id, self.thinking)
        self.completed.append(item)
        index, thinking, self.thinking = self.output_index, self.thinking, None
        self.output_index += 1
        return [self._event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                            summary_index=0, text=thinking),
                self._event("response.output_item.done", output_index=index, item=item)]

    def events(self, chunk: Event) -> list[tuple[str, Event]]:
        """The events for one ``/api/chat`` chunk."""
        out: list[tuple[str, Event]] = []
        if not self.started:
            self.started = True
            out += [self._event("response.created", response=_echo(self.req, self.rid, "in_progress", [], None)),
                    self._event("response.in_progress", response=_echo(self.req, self.rid, "in_progress", [], None))]
        message = chunk.get("message") or {}
        if message.get("thinking"):
            if self.thinking is None:
                self.thinking = ""
                self.reasoning_id = f"rs_{random.randrange(999999)}"  # noqa: S311 - an id
                out.append(self._event("response.output_item.added", output_index=self.output_index,
                                       item={"id": self.reasoning_id, "type": "reasoning", "summary": []}))
            self.thinking += message["thinking"]
            out.append(self._event("response.reasoning_summary_text.delta", item_id=self.reasoning_id,
                                   output_index=self.output_index, summary_index=0, delta=message["thinking"]))
        calls = tool_calls(message.get("tool_calls") or [])
        if calls:
            out += self._finish_reasoning()
            out += self._calls(calls)
            self.calls_sent = True
        elif not self.calls_sent and message.get("content"):
            out += self._text(message["content"])
        if chunk.get("done"):
            out += self._complete(chunk)
        return out

    def _calls(self, calls: list[Event]) -> list[tuple[str, Event]]:
        out = []
        for i, call in enumerate(calls):
            index, item_id = self.output_index + i, f"fc_{random.randrange(999999)}_{i}"  # noqa: S311 - an id
            item = _call_item(item_id, call)
            self.completed.append(item)
            out += [self._event("response.output_item.added", output_index=index,
                                item=_call_item(item_id, call, "in_progress")),
                    self._event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                                delta=item["arguments"]),
                    self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                arguments=item["arguments"]),
                    self._event("response.output_item.done", output_index=index, item=item)]
        self.output_index += len(calls)
        return out

    def _text(self, content: str) -> list[tuple[str, Event]]:
        out = self._finish_reasoning()
        item_id = self.item_id
        if self.text is None:
            self.text = ""
            out += [self._event("response.output_item.added", output_index=self.output_index,
                                item=_message_item(item_id, "", "in_progress")),
                    self._event("response.content_part.added", item_id=item_id, output_index=self.output_index,
                                content_index=0, part=_text_part(""))]
        self.text += content
        out.append(self._event("response.output_text.delta", item_id=item_id, output_index=self.output_index,
                               content_index=0, delta=content, logprobs=[]))
        return out

    def _complete(self, final: Event) -> list[tuple[str, Event]]:
        out = self._finish_reasoning()
        output = list(self.completed)
        if self.text is not None:
            item_id, index = self.item_id, self.output_index
            item = _message_item(item_id, self.text)
            output.append(item)
            if not self.calls_sent:
                out += [self._event("response.output_text.done", item_id=item_id, output_index=index,
                                    content_index=0, text=self.text, logprobs=[]),
                        self._event("response.content_part.done", item_id=item_id, output_index=index,
                                    content_index=0, part=_text_part(self.text)),
                        self._event("response.output_item.done", output_index=index, item=item)]
        response = _echo(self.req, self.rid, "completed", output, _usage(final))
        response["completed_at"] = int(time.time())
        out.append(self._event("response.completed", response=response))
        return out
