"""The Modelfile: Ollama's text form of a create request (``parser/parser.go``).

    FROM <model name | @sha256:... blob>
    PARAMETER <name> <value>
    TEMPLATE / SYSTEM / LICENSE / ADAPTER <value>
    MESSAGE <role> <content>

Values may be bare (to the end of the line), ``"quoted"`` or ``\"\"\"multi-line\"\"\"``; ``#``
starts a comment line. :func:`parse_modelfile` turns the text into the JSON create request, so
both forms go through the same create service.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest
from .options import merge_parameters, parse_parameter_text

COMMANDS = ("from", "adapter", "template", "system", "license", "parameter", "message", "requires")
MAX_MODELFILE = 1 << 20


def _split_commands(text: str) -> list[tuple[str, str]]:
    commands: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        # skip blank space and comment lines
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start = i
        while i < n and text[i] not in " \t\r\n":
            i += 1
        command = text[start:i].lower()
        if command not in COMMANDS:
            raise BadRequest('command must be one of "from", "license", "template", "system", "adapter", '
                             '"parameter", or "message"')
        while i < n and text[i] in " \t":
            i += 1
        value, i = _read_value(text, i, command)
        commands.append((command, value))
    return commands


def _read_value(text: str, i: int, command: str) -> tuple[str, int]:
    if command in ("parameter", "message"):
        # the first word is the name or role; the value follows it
        start = i
        while i < len(text) and text[i] not in " \t\r\n":
            i += 1
        head = text[start:i]
        while i < len(text) and text[i] in " \t":
            i += 1
        rest, i = _read_value(text, i, "value")
        return f"{head}\x00{rest}", i
    if text.startswith('"""', i):
        end = text.find('"""', i + 3)
        if end < 0:
            raise BadRequest("unterminated multiline string in Modelfile")
        return text[i + 3 : end], end + 3
    if text.startswith('"', i):
        j = i + 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= len(text):
            raise BadRequest("unterminated string in Modelfile")
        try:
            return json.loads(text[i : j + 1]), j + 1
        except ValueError:
            return text[i + 1 : j], j + 1
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    return text[i:end].strip(), end


def parse_modelfile(text: str) -> dict[str, Any]:
    """Convert Modelfile text into the fields of a JSON ``/api/create`` request."""
    if not isinstance(text, str):
        raise BadRequest("modelfile must be a string")
    if len(text) > MAX_MODELFILE:
        raise BadRequest("modelfile is too large")
    request: dict[str, Any] = {}
    params: list[tuple[str, Any]] = []
    messages: list[dict[str, str]] = []
    licenses: list[str] = []
    for command, value in _split_commands(text):
        if command == "from":
            if not value:
                raise BadRequest("FROM needs a model name or a blob digest")
            if "from" in request:  # another FROM: a projector, as Ollama's show writes it
                request.setdefault("from_more", []).append(value)
            else:
                request["from"] = value
        elif command == "parameter":
            key, _, raw = value.partition("\x00")
            params.append((key.lower(), parse_parameter_text(key.lower(), raw)))
        elif command == "message":
            role, _, content = value.partition("\x00")
            messages.append({"role": role.lower(), "content": content})
        elif command == "license":
            licenses.append(value)
        elif command == "adapter":
            request.setdefault("adapters_from", []).append(value)
        elif command in ("template", "system"):
            request[command] = value
        elif command == "requires":
            request["requires"] = value
    if "from" not in request:
        raise BadRequest("no FROM line for the model was specified")
    if params:
        request["parameters"] = merge_parameters(params)
    if messages:
        request["messages"] = messages
    if licenses:
        request["license"] = licenses
    return request


def render_modelfile(*, from_line: str, template: str | None, system: str | None,
                     params: dict[str, Any], messages: list[dict[str, Any]], licenses: list[str],
                     display_name: str, projectors: tuple[str, ...] = (), adapters: tuple[str, ...] = ()) -> str:
    """The Modelfile ``/api/show`` returns, as Ollama's ``Model.String`` writes it: FROM, ADAPTERs,
    projector FROMs, TEMPLATE, SYSTEM, PARAMETERs, LICENSEs, MESSAGEs, each value quoted only
    where parser.go's ``quote`` quotes it."""
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {display_name}",
        "",
        f"FROM {from_line}",
    ]
    lines += [f"ADAPTER {quote(adapter)}" for adapter in adapters]
    lines += [f"FROM {projector}" for projector in projectors]
    if template:
        lines.append(f"TEMPLATE {quote(template)}")
    if system:
        lines.append(f"SYSTEM {quote(system)}")
    for key in sorted(params):
        values = params[key] if isinstance(params[key], list) else [params[key]]
        lines += [f"PARAMETER {key} {quote(_go_value(value))}" for value in values]
    lines += [f"LICENSE {quote(text)}" for text in licenses]
    lines += [f"MESSAGE {message.get('role')} {quote(str(message.get('content', '')))}" for message in messages]
    return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    """parser.go's ``quote``: a value with a newline or a space at either end is quoted, in
    triple quotes when it holds a quote itself; any other value is written as it is."""
    if "\n" in text or text.startswith(" ") or text.endswith(" "):
        return f'"""{text}"""' if '"' in text else f'"{text}"'
    return text


def _go_value(value: Any) -> str:
    """A parameter value as Go's ``%v`` prints it (``true``, ``0.5``, ``4096``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shown_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """A show request's ``options``, which Ollama adds to the Modelfile it writes: the values it
    can print (a scalar, or a list of them, one PARAMETER line each); anything else is left out."""
    scalar = (str, int, float, bool)
    return {key: value for key, value in (options or {}).items()
            if isinstance(key, str) and (isinstance(value, scalar) or (
                isinstance(value, list) and all(isinstance(v, scalar) for v in value)))}
