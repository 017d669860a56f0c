"""A request body that is not JSON, worded as Ollama's Go server words it.

Ollama binds bodies with gin's ``ShouldBindJSON`` (a ``json.Decoder``) and answers 400 with the
decoder's own text: ``unexpected EOF`` for a body cut short, ``invalid character 'x' looking for
beginning of value`` and the like for a syntax error, ``missing request body`` for none at all.
Clients show these texts and some match them, so :func:`go_decode_error` turns the position and
reason Python's :mod:`json` reports into the text Go's scanner would have given at that byte.
"""

from __future__ import annotations

import json

_LITERALS = {"t": "true", "f": "false", "n": "null"}
_WHITESPACE = " \t\r\n"  # JSON's, which Go's scanner and Python's both skip
# strconv.Quote's short escapes, which Go's quoteChar uses for a control character
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_decode_error(body: bytes) -> str:
    """The message Ollama answers for ``body``, which Python's ``json`` refused."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip(_WHITESPACE):
        return "missing request body"  # the decoder's io.EOF, which Ollama's handlers name so
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return _translate(text, e.msg, e.pos)
    return "invalid JSON in request body"  # not reached: FastAPI refused it, json accepts it


def _translate(text: str, reason: str, pos: int) -> str:
    end = len(text.rstrip(_WHITESPACE))
    if reason.startswith("Unterminated string") or pos >= end:
        return "unexpected EOF"  # io.ErrUnexpectedEOF: the value was cut short
    char = text[pos]
    if reason == "Expecting value":
        return _value_start(text, pos)
    if reason.startswith("Expecting property name"):
        return f"{_invalid(char)} looking for beginning of object key string"
    if reason == "Expecting ':' delimiter":
        return f"{_invalid(char)} after object key"
    if reason == "Expecting ',' delimiter":
        inside = "object key:value pair" if _innermost(text, pos) == "{" else "array element"
        return f"{_invalid(char)} after {inside}"
    if reason.startswith("Invalid control character"):
        return f"{_invalid(char)} in string literal"
    if reason.startswith("Invalid \\uXXXX"):
        bad = next((c for c in text[pos + 2:pos + 6] if c not in "0123456789abcdefABCDEF"), char)
        return f"{_invalid(bad)} in \\u hexadecimal character escape"
    if reason.startswith("Invalid \\escape"):
        return f"{_invalid(text[pos + 1])} in string escape code" if pos + 1 < end else "unexpected EOF"
    # "Extra data": json.Unmarshal's word for bytes after the value
    return f"{_invalid(char)} after top-level value"


def _value_start(text: str, pos: int) -> str:
    """Python stopped where a value should begin: a bad literal or number, or a bad first byte."""
    char = text[pos]
    literal = _LITERALS.get(char)
    if literal is not None:
        for i, want in enumerate(literal):
            if pos + i >= len(text):
                return "unexpected EOF"
            if text[pos + i] != want:
                return f"{_invalid(text[pos + i])} in literal {literal} (expecting {_quote(want)})"
    if char == "-":
        if pos + 1 >= len(text):
            return "unexpected EOF"
        return f"{_invalid(text[pos + 1])} in numeric literal"
    return f"{_invalid(char)} looking for beginning of value"


def _innermost(text: str, pos: int) -> str:
    """``{`` or ``[``: the container open at ``pos`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _invalid(char: str) -> str:
    return f"invalid character {_quote(char)}"


def _quote(char: str) -> str:
    """Go's ``quoteChar``: ``'x'``, with ``'\\''`` and ``strconv.Quote``'s escapes (``'\\n'``)."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if char.isprintable():
        return f"'{char}'"
    escape = _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}")
    return f"'{escape}'"
