"""Tool calls in model output, parsed as Ollama's ``tools`` package does.

The tag that starts a tool call is read from the template (``parse_tag``): the first text
after ``{{ if .ToolCalls }}``, e.g. ``<tool_call>`` for Qwen/SmolLM2/Hermes templates, or
``{`` when calls are bare JSON (llama3.1). ``ToolCallParser`` is fed the streamed output: text
flows through at once, except text that may be the start of the tag, which is held back until
decided. After the tag, each JSON object that names one of the request's tools becomes a call;
``arguments`` (or ``parameters``, or a JSON string of either) are always returned as a dict.

Unlike Ollama's parser, a tool-call block is never dropped: one that names a tool the request did
not offer, or that does not parse, is returned as content at the end (Ollama answers empty content
and no calls, which LangChain's ``with_structured_output`` reads as ``None``).
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _goast as ast
from .gotemplate import Template

__all__ = ["ToolCall", "ToolCallParser", "parse_tag"]


# -- the tag ------------------------------------------------------------------------------------
def _mentions_tool_calls(p: ast.Pipe) -> bool:
    return any(isinstance(a, ast.Field) and "ToolCalls" in a.idents for c in p.cmds for a in c.args)


def _find_tool_call_if(nodes: Sequence[ast.Node]) -> ast.If | None:
    for n in nodes:
        if isinstance(n, ast.If) and _mentions_tool_calls(n.pipe):
            return n
        if isinstance(n, ast.Branch):
            found = _find_tool_call_if(n.body) or _find_tool_call_if(n.else_ or ())
            if found:
                return found
    return None


def _first_text(nodes: Sequence[ast.Node]) -> str | None:
    for n in nodes:
        if isinstance(n, ast.Text):
            if n.text.strip():
                return n.text
        elif isinstance(n, ast.Branch):
            return _first_text(n.body) or _first_text(n.else_ or ())
        elif isinstance(n, ast.Action):
            return None
    return None


def parse_tag(tmpl: Template | None) -> str:
    """The text that opens a tool call in this template's output; ``{`` when there is none."""
    node = _find_tool_call_if(tmpl.nodes) if tmpl is not None else None
    text = _first_text(node.body) if node is not None else None
    if text is None:
        return "{"
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


# -- parsing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    """One parsed call, shaped like Ollama's ``api.ToolCall``."""

    name: str
    arguments: dict[str, Any]
    index: int
    id: str

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "function": {"index": self.index, "name": self.name, "arguments": self.arguments}}


def new_call_id() -> str:
    """Ollama's ``toolCallId``: "call_" and 8 random lower-case letters/digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "call_" + "".join(secrets.choice(alphabet) for _ in range(8))


def _tool_name(tool: Any) -> str:
    fn = tool.get("function") if isinstance(tool, Mapping) else getattr(tool, "function", None)
    name = fn.get("name") if isinstance(fn, Mapping) else getattr(fn, "name", None)
    return str(name or "")


def _as_object(v: Any) -> dict[str, Any] | None:
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _arguments(obj: dict[str, Any], tool_name: str) -> tuple[dict[str, Any] | None, bool]:
    """Ollama's findObject: arguments under "arguments"/"parameters" or the tool's name."""
    if "name" in obj:
        for key in ("arguments", "parameters"):
            args = _as_object(obj.get(key))
            if args is not None:
                return args, True
        return None, True
    args = _as_object(obj.get(tool_name))
    if args is not None:
        return args, True
    for child in obj.values():
        for item in child if isinstance(child, list) else [child]:
            if isinstance(item, dict):
                found, ok = _arguments(item, tool_name)
                if ok:
                    return found, True
    return None, False


def _json_objects(buf: str) -> list[tuple[int, int]]:
    """(start, end) of each balanced top-level {...} in buf, skipping braces inside strings."""
    spans, depth, start, in_str, esc = [], 0, -1, False, False
    for i, c in enumerate(buf):
        if esc:
            esc = False
        elif c == "\\":
            esc = True
        elif c == '"':
            in_str = not in_str
        elif in_str:
            continue
        elif c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start != -1:
                spans.append((start, i + 1))
                start = -1
            depth = max(depth, 0)
    return spans


class ToolCallParser:
    """Streaming tool-call parser; one per response.

    ``feed(chunk)`` returns ``(content, calls)``: text to emit now and calls completed by this
    chunk. ``finish()`` returns what is left to emit at the end of the stream.
    """

    def __init__(self, tools: Sequence[Any], tag: str | None = None, template: Template | None = None) -> None:
        self.names = [n for n in (_tool_name(t) for t in tools) if n]
        self.tag = tag if tag is not None else parse_tag(template)
        self.buffer = ""
        self.state = "looking"  # -> "calling" after the tag -> "done" when nothing more can come
        self.count = 0
        self.kept = ""  # unparsed tool-call text set aside while later calls parse

    def feed(self, chunk: str) -> tuple[str, list[ToolCall]]:
        if self.state == "done":
            return chunk, []
        self.buffer += chunk
        content = ""
        if self.state == "looking":
            i, found = self._find_tag()
            if i == -1:
                content, self.buffer = self.buffer, ""
            else:
                content, self.buffer = self.buffer[:i], self.buffer[i:]
            # With a bare "{" or "[" tag, only output that starts with JSON can be a call.
            if self.tag in ("{", "[") and content.strip():
                self.state = "done"
                rest, self.buffer = content + self.buffer, ""
                return rest, []
            if not found:
                return content, []
            self.state = "calling"
        calls = []
        while (call := self._next_call()) is not None:
            calls.append(call)
        if self._json_done():
            self.state = "done"
            content, self.buffer, self.kept = content + self.kept + self.buffer, "", ""
        return content, calls

    def finish(self) -> str:
        """What is left to show at the end: Ollama's ``Content`` (the leftover text of a bare-JSON
        tag without calls), and also every tool-call block that did not become a call: all the held
        text when nothing parsed, else from the last unparsed tag on (a closing tag alone is dropped)."""
        rest, kept, self.buffer, self.kept = self.buffer, self.kept, "", ""
        if self.count == 0:
            return kept + rest
        start = rest.find(self.tag)
        return kept + (rest[start:] if start >= 0 and self.tag not in ("{", "[") else "")

    def _find_tag(self) -> tuple[int, bool]:
        i = self.buffer.find(self.tag)
        if i >= 0:
            return i, True
        for n in range(min(len(self.buffer), len(self.tag)), 0, -1):
            if self.buffer.endswith(self.tag[:n]):
                return len(self.buffer) - n, False
        return -1, False

    def _find_tool(self) -> tuple[str | None, int]:
        buf = self.buffer
        if not buf:
            return None, 0
        longest = max((len(n) for n in self.names), default=0)
        for i in range(1, min(len(buf), longest) + 1):  # a partial name at the end: wait
            tail = buf[-i:]
            if any(len(tail) < len(n) and n.startswith(tail) for n in self.names):
                return None, 0
        best, start, end = None, -1, -1
        for name in self.names:
            pos = buf.find(name)
            if pos == -1 or (start != -1 and (pos > start or (pos == start and len(name) <= len(best or "")))):
                continue
            best, start, end = name, pos, pos + len(name)
        return best, end

    def _next_call(self) -> ToolCall | None:
        name, end = self._find_tool()
        if name is None:
            return None
        for s, e in _json_objects(self.buffer):
            try:
                data = json.loads(self.buffer[s:e])
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            said = data.get("name")
            if isinstance(said, str) and said not in self.names:
                # names a tool that was not offered: not a call to the one it mentions inside;
                # kept, with the text before it, to be shown at the end
                self.kept += self.buffer[:e]
                self.buffer = self.buffer[e:]
                return self._next_call()
            args, found = _arguments(data, name)
            if not found:
                args = data
            if args is None:
                return None  # {"name": ...} without arguments: Ollama does not accept it either
            call = ToolCall(name, args, self.count, new_call_id())
            self.count += 1
            self.buffer = self.buffer[max(end, e):]
            return call
        return None

    def _json_done(self) -> bool:
        if self.tag not in ("{", "["):
            return False
        opener, closer = self.tag, "}" if self.tag == "{" else "]"
        depth, in_str, esc = 0, False, False
        for c in self.buffer:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = not in_str
            elif not in_str and c == opener:
                depth += 1
            elif not in_str and c == closer:
                depth -= 1
                if depth == 0:
                    return True
        return False
