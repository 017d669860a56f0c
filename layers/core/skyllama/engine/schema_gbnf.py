"""JSON schema -> GBNF, in pure Python: a port of llama.cpp's ``json_schema_to_grammar.py``.

Ported from llama-cpp-python 0.3.36's ``llama_cpp/llama_grammar.py`` (itself a copy of
llama.cpp's ``examples/json_schema_to_grammar.py``), both MIT licensed: Copyright (c) 2023
Andrei Betlen and Copyright (c) 2023-2024 The ggml authors. The output is the same text, rule
for rule (``tests/security/test_t32_grammars.py`` compares them), with these changes:

- no remote ``$ref`` fetching, and no ``dotall``/``raw_pattern`` modes (skyllama uses neither);
- refs beside a ``$ref`` (a recursive Pydantic model's ``$defs`` next to its root ``$ref``) are
  resolved too, where upstream fails with a ``KeyError``;
- the converter stops with :class:`GrammarLimit` once the grammar passes ``max_bytes`` or the
  conversion passes its ``deadline`` (``time.monotonic()``), checked at every rule it adds;
- backslashes in literals are escaped (upstream's ``enum``/``const`` with a quote or a newline
  gave a grammar llama.cpp refuses), and regex escapes too (``engine/gbnf_rules.py``);
- errors are :class:`ValueError` (not ``assert``), so ``python -O`` cannot skip them, and a
  pattern character the original loops on forever (a lone ``]`` or ``}``) is one of them.

Importing this module never loads llama.cpp: the server process builds grammars without it.
Callers check the schema's size first (``engine.grammar``); this module trusts those bounds.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .gbnf_rules import build_repetition, pattern_rule

SPACE_RULE = '" "?'
INVALID_RULE_CHARS_RE = re.compile(r"[^a-zA-Z0-9-]+")
# Upstream leaves backslashes as they are: the JSON escapes in an enum value (``\"``) then end the
# GBNF literal early, and llama.cpp refuses the grammar (a NULL grammar crashed the sampler).
GRAMMAR_LITERAL_ESCAPE_RE = re.compile(r'[\r\n"\\]')
GRAMMAR_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}


class GrammarLimit(ValueError):
    """The grammar grew past its size bound or the conversion past its deadline."""


_DIGITS = build_repetition("[0-9]", 0, 15)
# name -> (rule, the rules it needs)
PRIMITIVE_RULES: dict[str, tuple[str, list[str]]] = {
    "boolean": ('("true" | "false") space', []),
    "decimal-part": ("[0-9] " + _DIGITS, []),
    "integral-part": ("[0-9] | [1-9] " + _DIGITS, []),
    "number": ('("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space',
               ["integral-part", "decimal-part"]),
    "integer": ('("-"? integral-part) space', ["integral-part"]),
    "value": ("object | array | string | number | boolean | null",
              ["object", "array", "string", "number", "boolean", "null"]),
    "object": ('"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space',
               ["string", "value"]),
    "array": ('"[" space ( value ("," space value)* )? "]" space', ["value"]),
    "uuid": (r'"\"" ' + ' "-" '.join("[0-9a-fA-F]" * n for n in [8, 4, 4, 4, 12]) + r' "\"" space', []),
    "char": (r'[^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])', []),
    "string": (r'"\"" char* "\"" space', ["char"]),
    "null": ('"null" space', []),
}
STRING_FORMAT_RULES: dict[str, tuple[str, list[str]]] = {
    "date": ('[0-9] [0-9] [0-9] [0-9] "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )',
             []),
    "time": ('([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9] [0-9] [0-9] )? ( "Z" | '
             '( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )', []),
    "date-time": ('date "T" time', ["date", "time"]),
    "date-string": ('"\\"" date "\\"" space', ["date"]),
    "time-string": ('"\\"" time "\\"" space', ["time"]),
    "date-time-string": ('"\\"" date-time "\\"" space', ["date-time"]),
}
RESERVED_NAMES = {"root", "dot", *PRIMITIVE_RULES, *STRING_FORMAT_RULES}


def _literal(text: str) -> str:
    return '"' + GRAMMAR_LITERAL_ESCAPE_RE.sub(lambda m: GRAMMAR_LITERAL_ESCAPES[m.group(0)], text) + '"'


def _sub(name: str, suffix: str) -> str:
    return f"{name}{'-' if name else ''}{suffix}"


class SchemaConverter:
    """Visits a JSON schema and collects GBNF rules (``format_grammar`` writes them out)."""

    def __init__(self, *, max_bytes: int, deadline: float) -> None:
        self._rules: dict[str, str] = {"space": SPACE_RULE}
        self._refs: dict[str, Any] = {}
        self._refs_being_resolved: set[str] = set()
        self._size = len(SPACE_RULE)
        self._max_bytes = max_bytes
        self._deadline = deadline

    def _add_rule(self, name: str, rule: str) -> str:
        if time.monotonic() > self._deadline:
            raise GrammarLimit("the grammar took too long to build")
        esc_name = INVALID_RULE_CHARS_RE.sub("-", name)
        key = esc_name
        if esc_name in self._rules and self._rules[esc_name] != rule:
            i = 0
            while f"{esc_name}{i}" in self._rules and self._rules[f"{esc_name}{i}"] != rule:
                i += 1
            key = f"{esc_name}{i}"
        if key not in self._rules:
            self._size += len(key) + len(rule) + 5
            if self._size > self._max_bytes:
                raise GrammarLimit(f"the grammar is larger than {self._max_bytes} bytes")
        self._rules[key] = rule
        return key

    def resolve_refs(self, schema: Any, url: str) -> Any:
        """Record every local ``#/...`` ``$ref`` target (rewritten to ``url#/...``)."""

        def visit(n: Any) -> Any:
            if isinstance(n, list):
                return [visit(x) for x in n]
            if isinstance(n, dict):
                ref = n.get("$ref")
                if ref is not None and ref not in self._refs:
                    if not isinstance(ref, str) or not ref.startswith("#/"):
                        raise ValueError(f"Unsupported ref {ref}")
                    target = schema
                    ref = f"{url}{ref}"
                    n["$ref"] = ref
                    for sel in ref.split("#")[-1].split("/")[1:]:
                        if not isinstance(target, dict) or sel not in target:
                            raise ValueError(f"Error resolving ref {ref}: {sel} not found")
                        target = target[sel]
                    self._refs[ref] = target
                for key, v in n.items():  # upstream skips these beside a $ref (Pydantic's recursive models)
                    if key != "$ref":
                        visit(v)
            return n

        return visit(schema)

    def _union(self, name: str, alternatives: list[Any]) -> str:
        return " | ".join(self.visit(alt, f"{name}{'-' if name else 'alternative-'}{i}")
                          for i, alt in enumerate(alternatives))

    def _resolve_ref(self, ref: str) -> str:
        ref_name = ref.split("/")[-1]
        if ref_name not in self._rules and ref not in self._refs_being_resolved:
            self._refs_being_resolved.add(ref)
            ref_name = self.visit(self._refs[ref], ref_name)
            self._refs_being_resolved.remove(ref)
        return ref_name

    def _constant(self, value: Any) -> str:
        return _literal(json.dumps(value))

    def visit(self, schema: dict[str, Any], name: str) -> str:
        schema_type = schema.get("type")
        schema_format = schema.get("format")
        rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
        if (ref := schema.get("$ref")) is not None:
            return self._add_rule(rule_name, self._resolve_ref(ref))
        if "oneOf" in schema or "anyOf" in schema:
            return self._add_rule(rule_name, self._union(name, schema.get("oneOf") or schema["anyOf"]))
        if isinstance(schema_type, list):
            return self._add_rule(rule_name, self._union(name, [{"type": t} for t in schema_type]))
        if "const" in schema:
            return self._add_rule(rule_name, self._constant(schema["const"]))
        if "enum" in schema:
            return self._add_rule(rule_name, " | ".join(self._constant(v) for v in schema["enum"]))
        if schema_type in (None, "object") and (
                "properties" in schema
                or ("additionalProperties" in schema and schema["additionalProperties"] is not True)):
            required = set(schema.get("required", []))
            properties = list(schema.get("properties", {}).items())
            return self._add_rule(rule_name, self._object_rule(properties, required, name,
                                                               schema.get("additionalProperties")))
        if schema_type in (None, "object") and "allOf" in schema:
            return self._add_rule(rule_name, self._all_of(schema["allOf"], name))
        if schema_type in (None, "array") and ("items" in schema or "prefixItems" in schema):
            items = schema.get("items") or schema["prefixItems"]
            if isinstance(items, list):
                tuple_rules = (self.visit(item, _sub(name, f"tuple-{i}")) for i, item in enumerate(items))
                return self._add_rule(rule_name, '"[" space ' + ' "," space '.join(tuple_rules) + ' "]" space')
            item_rule = self.visit(items, _sub(name, "item"))
            repetition = build_repetition(item_rule, schema.get("minItems", 0), schema.get("maxItems"),
                                          separator='"," space')
            return self._add_rule(rule_name, '"[" space ' + repetition + ' "]" space')
        if schema_type in (None, "string") and "pattern" in schema:
            return pattern_rule(self._add_rule, schema["pattern"], rule_name)
        if schema_type in (None, "string") and re.match(r"^uuid[1-5]?$", schema_format or ""):
            return self._add_primitive("root" if rule_name == "root" else str(schema_format), PRIMITIVE_RULES["uuid"])
        if schema_type in (None, "string") and f"{schema_format}-string" in STRING_FORMAT_RULES:
            prim_name = f"{schema_format}-string"
            return self._add_rule(rule_name, self._add_primitive(prim_name, STRING_FORMAT_RULES[prim_name]))
        if schema_type == "string" and ("minLength" in schema or "maxLength" in schema):
            char_rule = self._add_primitive("char", PRIMITIVE_RULES["char"])
            repetition = build_repetition(char_rule, schema.get("minLength", 0), schema.get("maxLength"))
            return self._add_rule(rule_name, r'"\"" ' + repetition + r' "\"" space')
        if schema_type == "object" or len(schema) == 0:
            return self._add_rule(rule_name, self._add_primitive("object", PRIMITIVE_RULES["object"]))
        if schema_type not in PRIMITIVE_RULES:
            raise ValueError(f"Unrecognized schema: {json.dumps(schema)[:200]}")
        return self._add_primitive("root" if rule_name == "root" else schema_type, PRIMITIVE_RULES[schema_type])

    def _all_of(self, components: list[Any], name: str) -> str:
        required: set[str] = set()
        properties: list[tuple[str, Any]] = []

        def add_component(comp_schema: dict[str, Any], is_required: bool) -> None:
            if (ref := comp_schema.get("$ref")) is not None:
                comp_schema = self._refs[ref]
            for prop_name, prop_schema in comp_schema.get("properties", {}).items():
                properties.append((prop_name, prop_schema))
                if is_required:
                    required.add(prop_name)

        for t in components:
            if "anyOf" in t:
                for tt in t["anyOf"]:
                    add_component(tt, is_required=False)
            else:
                add_component(t, is_required=True)
        return self._object_rule(properties, required, name, additional_properties=[])

    def _add_primitive(self, name: str, rule: tuple[str, list[str]]) -> str:
        key = self._add_rule(name, rule[0])
        for dep in rule[1]:
            dep_rule = PRIMITIVE_RULES.get(dep) or STRING_FORMAT_RULES[dep]
            if dep not in self._rules:
                self._add_primitive(dep, dep_rule)
        return key

    def _object_rule(self, properties: list[tuple[str, Any]], required: set[str], name: str,
                     additional_properties: Any) -> str:
        kv_rules: dict[str, str] = {}
        for prop_name, prop_schema in properties:
            prop_rule = self.visit(prop_schema, _sub(name, prop_name))
            kv_rules[prop_name] = self._add_rule(
                _sub(name, f"{prop_name}-kv"), rf'{self._constant(prop_name)} space ":" space {prop_rule}')
        required_props = [k for k, _ in properties if k in required]
        optional_props = [k for k, _ in properties if k not in required]
        if additional_properties is True or isinstance(additional_properties, dict):
            sub_name = _sub(name, "additional")
            value_rule = self.visit({} if additional_properties is True else additional_properties,
                                    f"{sub_name}-value")
            kv_rules["*"] = self._add_rule(f"{sub_name}-kv", self._add_primitive("string", PRIMITIVE_RULES["string"])
                                           + f' ":" space {value_rule}')
            optional_props.append("*")

        rule = '"{" space ' + ' "," space '.join(kv_rules[k] for k in required_props)
        if optional_props:
            rule += " ("
            if required_props:
                rule += ' "," space ( '

            def recursive_refs(ks: list[str], first_is_optional: bool) -> str:
                k, *rest = ks
                kv_rule = kv_rules[k]
                if k == "*":
                    res = self._add_rule(_sub(name, "additional-kvs"), f'{kv_rule} ( "," space ' + kv_rule + " )*")
                elif first_is_optional:
                    res = f'( "," space {kv_rule} )?'
                else:
                    res = kv_rule
                if rest:
                    res += " " + self._add_rule(_sub(name, f"{k}-rest"), recursive_refs(rest, first_is_optional=True))
                return res

            rule += " | ".join(recursive_refs(optional_props[i:], first_is_optional=False)
                               for i in range(len(optional_props)))
            if required_props:
                rule += " )"
            rule += " )?"
        return rule + ' "}" space'

    def format_grammar(self) -> str:
        return "\n".join(f"{name} ::= {rule}" for name, rule in sorted(self._rules.items()))


def json_schema_to_gbnf(schema: Any, *, max_bytes: int, deadline: float) -> str:
    """The GBNF grammar for a (parsed) JSON schema, as llama.cpp's converter writes it."""
    converter = SchemaConverter(max_bytes=max_bytes, deadline=deadline)
    schema = converter.resolve_refs(schema, "stdin")
    converter.visit(schema, "")
    return converter.format_grammar()
