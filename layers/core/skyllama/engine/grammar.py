"""Grammars for a request's ``format``, built in pure Python within explicit bounds (T-32).

``format`` is ``"json"`` (a fixed JSON grammar) or a JSON schema, turned into GBNF by the port of
llama.cpp's converter (``engine/schema_gbnf.py``). That converter expands repetitions in full
(``minLength: 1000000000`` is a billion-item rule built in one C call that holds the GIL, so the
whole server froze), so every schema is walked first and refused, with a 400 that names the
bound, beyond these (from what real clients send: Pydantic and zod schemas of a few KB; OpenAI's
structured outputs cap a schema at 5000 properties, 10 levels and 1000 enum values):

=======================  ==========  ==============================================================
bound                    value       what it limits
=======================  ==========  ==============================================================
``MAX_SCHEMA_BYTES``     64 KiB      the schema as compact JSON
``MAX_DEPTH``            32          nesting of objects and arrays in the schema document
``MAX_LENGTH``           4096        ``minLength``/``maxLength``, and ``{m,n}`` in a ``pattern``
``MAX_ITEMS``            1024        ``minItems``/``maxItems``
``MAX_OPTIONAL``         1000        ``maxLength - minLength``, ``maxItems - minItems``, ``n - m``
                                     in ``{m,n}``: each optional repetition nests one group, and
                                     llama.cpp's grammar parser refuses more than 1000 of them
``MAX_TUPLE_ITEMS``      256         ``prefixItems`` (or an ``items`` list) entries
``MAX_PROPERTIES``       256         ``properties`` of one object
``MAX_ENUM_VALUES``      1024        ``enum`` entries
``MAX_ENUM_BYTES``       16 KiB      one ``enum`` (all its values) or ``const``, as JSON
``MAX_REFS``             128         ``$ref`` occurrences (left-recursive ``$ref`` cycles: refused)
``MAX_DEFS``             128         ``$defs``/``definitions`` entries
``MAX_PATTERN_LENGTH``   1024        characters of one ``pattern``
``MAX_GBNF_BYTES``       256 KiB     the generated grammar (checked while it is built)
``GRAMMAR_TIMEOUT``      1 s         building the grammar (checked at every rule added)
=======================  ==========  ==============================================================

Within these a grammar builds in milliseconds. This module never imports ``llama_cpp``: the
native syntax check (``llama_sampler_init_grammar``) happens where the model runs.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ..errors import BadRequest
from .schema_gbnf import GrammarLimit, json_schema_to_gbnf

__all__ = ["JSON_GBNF", "check_schema", "grammar_for_format"]

MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_LENGTH = 4096
MAX_ITEMS = 1024
MAX_OPTIONAL = 1000
MAX_TUPLE_ITEMS = 256
MAX_PROPERTIES = 256
MAX_ENUM_VALUES = 1024
MAX_ENUM_BYTES = 16 * 1024
MAX_REFS = 128
MAX_DEFS = 128
MAX_PATTERN_LENGTH = 1024
MAX_GBNF_BYTES = 256 * 1024
GRAMMAR_TIMEOUT = 1.0

# llama.cpp's grammars/json.gbnf, as llama-cpp-python 0.3.36 ships it (llama_grammar.JSON_GBNF).
JSON_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
"""

_COUNTS = {"minLength": MAX_LENGTH, "maxLength": MAX_LENGTH, "minItems": MAX_ITEMS, "maxItems": MAX_ITEMS}
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def _refuse(what: str) -> BadRequest:
    return BadRequest(f"format: {what}")


def _exceeds(name: str, value: int, limit: int) -> BadRequest:
    return _refuse(f"{name} {value} exceeds the limit of {limit}")


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _check_keywords(node: dict[str, Any], refs: list[str]) -> None:
    """The bounds one schema object's keywords can break (a property *named* like a keyword
    maps to a schema object, so only non-object values are read as keywords)."""
    for key, value in node.items():
        if isinstance(value, dict) and key not in ("properties", "$defs", "definitions"):
            continue
        if key in ("enum", "anyOf", "oneOf", "type") and value == []:
            raise _refuse(f"{key} must not be empty")  # an empty rule: llama.cpp refuses the grammar
        if key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _refuse(f"{key} must be a non-negative integer")
            if value > _COUNTS[key]:
                raise _exceeds(key, value, _COUNTS[key])
        elif key == "properties" and isinstance(value, dict) and len(value) > MAX_PROPERTIES:
            raise _exceeds("properties count", len(value), MAX_PROPERTIES)
        elif key in ("$defs", "definitions") and isinstance(value, dict) and len(value) > MAX_DEFS:
            raise _exceeds(f"{key} count", len(value), MAX_DEFS)
        elif key in ("prefixItems", "items") and isinstance(value, list) and len(value) > MAX_TUPLE_ITEMS:
            raise _exceeds(f"{key} count", len(value), MAX_TUPLE_ITEMS)
        elif key == "enum" and isinstance(value, list):
            if len(value) > MAX_ENUM_VALUES:
                raise _exceeds("enum count", len(value), MAX_ENUM_VALUES)
            if (size := _json_bytes(value)) > MAX_ENUM_BYTES:
                raise _exceeds("enum size in bytes", size, MAX_ENUM_BYTES)
        elif key == "const" and (size := _json_bytes(value)) > MAX_ENUM_BYTES:
            raise _exceeds("const size in bytes", size, MAX_ENUM_BYTES)
        elif key == "pattern" and isinstance(value, str):
            _check_pattern(value)
        elif key == "$ref" and isinstance(value, str):
            refs.append(value)
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        span = node[high] - node.get(low, 0) if isinstance(node.get(high), int) else 0
        if span > MAX_OPTIONAL and isinstance(node.get(low, 0), int):
            raise _exceeds(f"{high} - {low}", span, MAX_OPTIONAL)


def _check_pattern(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _exceeds("pattern length", len(pattern), MAX_PATTERN_LENGTH)
    for match in _QUANTIFIER.finditer(pattern):
        low, high = (int(n) if n else 0 for n in match.groups())
        if max(low, high) > MAX_LENGTH:
            raise _exceeds("pattern repetition", max(low, high), MAX_LENGTH)
        if "," in match.group(0) and high - low > MAX_OPTIONAL:
            raise _exceeds("pattern repetition n - m", high - low, MAX_OPTIONAL)


def _walk(schema: Any) -> list[str]:
    """Check nesting and every schema object's keywords without recursion; returns the refs."""
    refs: list[str] = []
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _exceeds("nesting depth", depth, MAX_DEPTH)
        if isinstance(node, dict):
            _check_keywords(node, refs)
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
        if len(refs) > MAX_REFS:
            raise _exceeds("$ref count", len(refs), MAX_REFS)
    return refs


def _target(schema: dict[str, Any], ref: str) -> Any:
    node: Any = schema
    for part in ref[2:].split("/") if ref.startswith("#/") else ():
        node = node.get(part) if isinstance(node, dict) else None
    return node if ref.startswith("#/") else None


def _left_refs(node: Any) -> list[str]:
    """Refs a schema's rule starts with: itself, or any ``anyOf``/``oneOf`` alternative's."""
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("$ref"), str):
        return [node["$ref"]]
    alternatives = node.get("oneOf") or node.get("anyOf")
    return [r for alt in alternatives for r in _left_refs(alt)] if isinstance(alternatives, list) else []


def _check_ref_cycles(schema: dict[str, Any], refs: list[str]) -> None:
    """A ``$ref`` that leads back to itself before any text (``a ::= a | ...``) is left
    recursion, which llama.cpp's grammar engine refuses; refuse it here with a clear message."""
    on_path, done = set(), set()
    for start in refs:
        if start in done:
            continue
        on_path.add(start)
        stack = [(start, iter(_left_refs(_target(schema, start))))]
        while stack:  # depth-first, without recursion
            ref, following = stack[-1]
            nxt = next(following, None)
            if nxt is None:
                stack.pop()
                on_path.discard(ref)
                done.add(ref)
            elif nxt in on_path:
                raise _refuse(f"$ref {nxt} refers to itself (left recursion)")
            elif nxt not in done:
                on_path.add(nxt)
                stack.append((nxt, iter(_left_refs(_target(schema, nxt)))))


def check_schema(schema: dict[str, Any]) -> None:
    """Raise :class:`BadRequest` naming the first bound a ``format`` schema breaks."""
    refs = _walk(schema)
    if (size := _json_bytes(schema)) > MAX_SCHEMA_BYTES:
        raise _exceeds("schema size in bytes", size, MAX_SCHEMA_BYTES)
    _check_ref_cycles(schema, refs)


def grammar_for_format(fmt: Any) -> str | None:
    """GBNF for a request's ``format``: ``"json"``, a JSON schema object, or nothing.

    Raises :class:`BadRequest` for anything else, a schema beyond a bound, or one the
    converter cannot turn into a grammar.
    """
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return JSON_GBNF
    if not isinstance(fmt, dict):
        raise BadRequest(f"invalid format: {json.dumps(fmt)[:80]}; expected \"json\" or a JSON schema")
    check_schema(fmt)
    schema = json.loads(json.dumps(fmt))  # the converter rewrites $ref values in place
    try:
        return json_schema_to_gbnf(schema, max_bytes=MAX_GBNF_BYTES, deadline=time.monotonic() + GRAMMAR_TIMEOUT)
    except GrammarLimit as e:
        raise _refuse(str(e)) from None
    except RecursionError:
        raise _refuse("the schema's $ref chains nest too deeply") from None
    except AttributeError:  # upstream reads every schema as an object ("items": true fails here)
        raise BadRequest("invalid JSON schema in format: every schema must be an object") from None
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BadRequest(f"invalid JSON schema in format: {e}") from None
