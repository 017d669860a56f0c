"""The values Ollama hands to templates (``template/template.go``), built from API dicts.

Ollama converts ``api.Message``/``api.Tool`` into template types before execution; their
``String()`` methods decide how ``{{ .Tools }}``, ``{{ . }}`` in a tools range, and
``{{ .Function.Arguments }}`` print (JSON). Field names are Go's, so templates read them as-is.

One deliberate difference: Ollama's ``templateToolFunction`` and
``templateToolFunctionParameters`` lack ``String()`` (ollama/ollama#14601), so
``{{ .Function }}`` (qwen2.5, qwen3 templates) prints Go struct syntax there. skyllama prints the
JSON those templates expect, as the fix proposed upstream (ollama/ollama#18391) does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._govalues import NilSlice, Ordered, marshal, sprint


def go_decoded(v: Any) -> Any:
    """A JSON value as Go decodes it into ``any``: numbers become float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): go_decoded(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [go_decoded(x) for x in v]
    return v


def _omit(pairs: list[tuple[str, Any]], omitempty: set[str]) -> Ordered:
    out = Ordered()
    for key, value in pairs:
        if key in omitempty and (value is None or (isinstance(value, list | dict | str) and not value)):
            continue
        out[key] = value
    return out


class _JSONStringer:
    def go_string(self) -> str:
        return marshal(self)


class PropertyType(list[str]):
    """api.PropertyType: a JSON-schema type, one string or a list."""

    go_type = "api.PropertyType"

    def go_string(self) -> str:
        if not self:
            return ""
        return self[0] if len(self) == 1 else sprint(list(self))

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else (list(self) or None)


_TS = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
       "array": "any[]", "object": "Record<string, any>", "null": "null"}


@dataclass(eq=False)
class ToolProperty:
    """api.ToolProperty."""

    AnyOf: list[ToolProperty] = field(default_factory=NilSlice)
    Type: PropertyType = field(default_factory=PropertyType)
    Items: Any = None
    Description: str = ""
    Enum: list[Any] = field(default_factory=NilSlice)
    Properties: Ordered | None = None
    Required: list[str] = field(default_factory=NilSlice)

    go_type: ClassVar[str] = "api.ToolProperty"
    go_fields: ClassVar[tuple[str, ...]] = ("AnyOf", "Type", "Items", "Description", "Enum", "Properties", "Required")
    go_methods: ClassVar[dict[str, str]] = {"ToTypeScriptType": "to_typescript_type"}

    def go_json(self) -> Ordered:
        return _omit([("anyOf", self.AnyOf), ("type", self.Type), ("items", self.Items),
                      ("description", self.Description), ("enum", self.Enum),
                      ("properties", self.Properties), ("required", self.Required)],
                     {"anyOf", "type", "items", "description", "enum", "properties", "required"})

    def to_typescript_type(self) -> str:
        if self.AnyOf:
            return " | ".join(p.to_typescript_type() for p in self.AnyOf)
        if not self.Type:
            return "any"
        return " | ".join(_TS.get(t, "any") for t in self.Type)


class TemplateProperties(dict[str, ToolProperty]):
    """templateProperties: a map that prints as JSON (``{}`` when nil)."""

    go_type = "template.templateProperties"

    def __init__(self, items: Mapping[str, ToolProperty] | None) -> None:
        super().__init__(items or {})
        self.is_nil = items is None

    def go_string(self) -> str:
        return "{}" if self.is_nil else marshal(dict(self))

    def go_json(self) -> Any:
        return None if self.is_nil else dict(self)


class TemplateArgs(dict[str, Any]):
    """templateArgs: tool-call arguments, printing as JSON with sorted keys."""

    go_type = "template.templateArgs"

    def go_string(self) -> str:
        return marshal(dict(self))


@dataclass(eq=False)
class TemplateToolFunctionParameters(_JSONStringer):
    Type: str = ""
    Defs: Any = None
    Items: Any = None
    Required: list[str] = field(default_factory=NilSlice)
    Properties: TemplateProperties = field(default_factory=lambda: TemplateProperties(None))

    go_type: ClassVar[str] = "template.templateToolFunctionParameters"
    go_fields: ClassVar[tuple[str, ...]] = ("Type", "Defs", "Items", "Required", "Properties")

    def go_json(self) -> Ordered:
        return _omit([("type", self.Type), ("$defs", self.Defs), ("items", self.Items),
                      ("required", self.Required), ("properties", self.Properties)], {"$defs", "items", "required"})


@dataclass(eq=False)
class TemplateToolFunction(_JSONStringer):
    Name: str = ""
    Description: str = ""
    Parameters: TemplateToolFunctionParameters = field(default_factory=TemplateToolFunctionParameters)

    go_type: ClassVar[str] = "template.templateToolFunction"
    go_fields: ClassVar[tuple[str, ...]] = ("Name", "Description", "Parameters")

    def go_json(self) -> Ordered:
        return _omit([("name", self.Name), ("description", self.Description), ("parameters", self.Parameters)], set())


@dataclass(eq=False)
class TemplateTool(_JSONStringer):
    Type: str = ""
    Items: Any = None
    Function: TemplateToolFunction = field(default_factory=TemplateToolFunction)

    go_type: ClassVar[str] = "template.templateTool"
    go_fields: ClassVar[tuple[str, ...]] = ("Type", "Items", "Function")

    def go_json(self) -> Ordered:
        return _omit([("type", self.Type), ("items", self.Items), ("function", self.Function)], {"items"})


class TemplateTools(list[TemplateTool]):
    """templateTools: prints as a JSON array (``null`` when the request had no tools)."""

    go_type = "template.templateTools"

    def __init__(self, tools: list[TemplateTool] | None) -> None:
        super().__init__(tools or [])
        self.is_nil = tools is None

    def go_string(self) -> str:
        return marshal(self)

    def go_json(self) -> Any:
        return None if self.is_nil else list(self)


@dataclass(eq=False)
class TemplateToolCallFunction:
    Index: int = 0
    Name: str = ""
    Arguments: TemplateArgs = field(default_factory=TemplateArgs)

    go_type: ClassVar[str] = "template.templateToolCallFunction"
    go_fields: ClassVar[tuple[str, ...]] = ("Index", "Name", "Arguments")


@dataclass(eq=False)
class TemplateToolCall:
    ID: str = ""
    Function: TemplateToolCallFunction = field(default_factory=TemplateToolCallFunction)

    go_type: ClassVar[str] = "template.templateToolCall"
    go_fields: ClassVar[tuple[str, ...]] = ("ID", "Function")


@dataclass(eq=False)
class TemplateMessage:
    """A chat message as templates see it (``*template.templateMessage``)."""

    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: list[Any] = field(default_factory=NilSlice)
    ToolCalls: list[TemplateToolCall] = field(default_factory=NilSlice)
    ToolName: str = ""
    ToolCallID: str = ""

    go_type: ClassVar[str] = "*template.templateMessage"
    go_fields: ClassVar[tuple[str, ...]] = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")
    go_pointer: ClassVar[bool] = True


# -- conversion from API dicts ------------------------------------------------------------------
def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _slice(items: list[Any] | None) -> list[Any]:
    return NilSlice() if items is None else list(items)


def to_property(p: Any) -> ToolProperty:
    t = _get(p, "type")
    nested = _get(p, "properties")
    return ToolProperty(
        AnyOf=NilSlice() if _get(p, "anyOf") is None else [to_property(x) for x in _get(p, "anyOf")],
        Type=PropertyType([t] if isinstance(t, str) else (t or [])),
        Items=go_decoded(_get(p, "items")),
        Description=_get(p, "description") or "",
        Enum=_slice(go_decoded(_get(p, "enum"))),
        Properties=None if nested is None else Ordered({k: to_property(v) for k, v in nested.items()}),
        Required=_slice(_get(p, "required")),
    )


def to_tools(tools: list[Any] | None) -> TemplateTools:
    """convertToolsForTemplate: API tool dicts to templateTools."""
    if tools is None:
        return TemplateTools(None)
    out = []
    for tool in tools:
        fn = _get(tool, "function") or {}
        params = _get(fn, "parameters") or {}
        props = _get(params, "properties")
        out.append(TemplateTool(
            Type=_get(tool, "type") or "",
            Items=go_decoded(_get(tool, "items")),
            Function=TemplateToolFunction(
                Name=_get(fn, "name") or "",
                Description=_get(fn, "description") or "",
                Parameters=TemplateToolFunctionParameters(
                    Type=_get(params, "type") or "",
                    Defs=go_decoded(_get(params, "$defs", _get(params, "defs"))),
                    Items=go_decoded(_get(params, "items")),
                    Required=_slice(_get(params, "required")),
                    Properties=TemplateProperties(
                        None if props is None else {k: to_property(v) for k, v in props.items()}),
                ),
            ),
        ))
    return TemplateTools(out)


def to_message(m: Any) -> TemplateMessage:
    """convertMessagesForTemplate for one message dict."""
    calls = _get(m, "tool_calls")
    converted = NilSlice()
    for tc in calls or ():
        fn = _get(tc, "function") or {}
        args = _get(fn, "arguments") or {}
        converted.append(TemplateToolCall(
            ID=_get(tc, "id") or "",
            Function=TemplateToolCallFunction(
                Index=int(_get(fn, "index") or 0),
                Name=_get(fn, "name") or "",
                Arguments=TemplateArgs(go_decoded(args) if isinstance(args, Mapping) else {}),
            ),
        ))
    return TemplateMessage(
        Role=_get(m, "role") or "",
        Content=_get(m, "content") or "",
        Thinking=_get(m, "thinking") or "",
        Images=_slice(_get(m, "images")),
        ToolCalls=converted,
        ToolName=_get(m, "tool_name") or "",
        ToolCallID=_get(m, "tool_call_id") or "",
    )
