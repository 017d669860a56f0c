"""T-32 bounded grammars: a ``format`` JSON schema is checked against explicit bounds
(``skyllama.engine.grammar``) before it is turned into a GBNF grammar, in pure Python.

Checked here: every bound answers 400 naming it, against a real server, and ``/api/version``
keeps answering within 100 ms while such requests are processed (a ``minLength`` of a billion
used to freeze the whole server); the port produces exactly llama-cpp-python's GBNF for ordinary
schemas; building a grammar never imports ``llama_cpp``; a Pydantic model's schema (nested
objects, arrays, enums) still constrains the demo SmolLM2 to valid JSON matching it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from serving import RunningServer
from skyllama.engine import grammar
from skyllama.errors import BadRequest

MODEL = "smollm2:135m"


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


# (schema, the words the 400 must contain)
BEYOND_BOUNDS: list[tuple[dict[str, Any], str]] = [
    ({"type": "string", "minLength": 1_000_000_000}, "minLength 1000000000 exceeds the limit of 4096"),
    ({"type": "string", "maxLength": 10_000}, "maxLength 10000 exceeds the limit"),
    ({"type": "string", "maxLength": 4000}, "maxLength - minLength 4000 exceeds the limit of 1000"),
    ({"type": "array", "items": {}, "minItems": 1_000_000_000}, "minItems 1000000000 exceeds"),
    ({"type": "array", "items": {}, "maxItems": 5000}, "maxItems 5000 exceeds"),
    ({"type": "array", "prefixItems": [{"type": "null"}] * 300}, "prefixItems count 300 exceeds"),
    ({"enum": list(range(2000))}, "enum count 2000 exceeds"),
    ({"enum": ["x" * 1000] * 20}, "enum size in bytes"),
    ({"const": "x" * 20_000}, "const size in bytes"),
    (_nested(40), "nesting depth 33 exceeds the limit of 32"),
    ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(300)}},
     "properties count 300 exceeds"),
    ({"$defs": {f"d{i}": {"type": "integer"} for i in range(200)}}, "$defs count 200 exceeds"),
    ({"type": "array", "prefixItems": [{"$ref": "#/$defs/a"}] * 200, "$defs": {"a": {"type": "integer"}}},
     "$ref count 129 exceeds"),
    ({"$ref": "#/$defs/a", "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]},
                                     "b": {"$ref": "#/$defs/a"}}}, "refers to itself"),
    ({"type": "string", "pattern": "^" + "a" * 2000 + "$"}, "pattern length 2002 exceeds"),
    ({"type": "string", "pattern": "^a{1000000000}$"}, "pattern repetition 1000000000 exceeds"),
    ({"type": "object", "properties": {"p": {"type": "string", "description": "x" * 70_000}}},
     "schema size in bytes"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 1000} for i in range(60)}},
     "the grammar is larger than 262144 bytes"),
    ({"type": "string", "minLength": -1}, "minLength must be a non-negative integer"),
    ({"type": "string", "pattern": "^}$"}, "Unsupported pattern syntax"),  # upstream loops forever here
    ({"enum": []}, "enum must not be empty"),  # llama.cpp refuses an empty rule: a NULL grammar
    ({"type": "string", "pattern": "^a**$"}, "Nothing to repeat"),
    ({"type": "string", "pattern": "^\\u12$"}, "Invalid escape"),
    ({"type": "string", "pattern": "^\\p{L}$"}, "Unsupported escape"),
]


@pytest.mark.parametrize(("schema", "words"), BEYOND_BOUNDS, ids=[w[:32] for _, w in BEYOND_BOUNDS])
def test_each_bound_is_a_400_naming_it(demo_server: RunningServer, schema: dict[str, Any], words: str) -> None:
    for route, body in (("/api/generate", {"prompt": "hi"}),
                        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]})):
        r = httpx.post(demo_server.url + route, json={"model": MODEL, "stream": False, "format": schema, **body},
                       timeout=30)
        assert r.status_code == 400, r.text
        assert words in r.json()["error"] and r.json()["error"].startswith(("format:", "invalid JSON schema")), r.text


def test_the_server_answers_while_huge_schemas_are_refused(demo_server: RunningServer) -> None:
    # Sizes a worker could still survive if the bounds were off (a billion would eat all memory).
    huge = [{"type": "string", "minLength": 30_000_000}, {"type": "array", "items": {}, "minItems": 30_000_000}]
    answers: list[int] = []

    def send_bad() -> None:
        with httpx.Client(timeout=60) as c:
            for schema in huge * 3:
                answers.append(c.post(demo_server.url + "/api/generate",
                                      json={"model": MODEL, "prompt": "hi", "stream": False,
                                            "format": schema}).status_code)

    worst = 0.0
    with httpx.Client(timeout=5) as c:
        assert c.get(demo_server.url + "/api/version").status_code == 200  # connection warmed up
        sender = threading.Thread(target=send_bad)
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            assert c.get(demo_server.url + "/api/version").status_code == 200
            worst = max(worst, time.perf_counter() - started)
        sender.join()
    assert answers == [400] * 6
    assert worst < 0.1, f"/api/version took {worst * 1000:.0f} ms while a schema was being checked"


class Colour(StrEnum):
    red = "red"
    green = "green"
    blue = "blue"


class Pet(BaseModel):
    name: str = Field(max_length=12)
    kind: Literal["cat", "dog", "fish"]


class Person(BaseModel):
    name: str = Field(max_length=16)
    age: int
    favourite: Colour
    pets: list[Pet] = Field(max_length=2)
    tags: list[str] = Field(max_length=3)


ORDINARY: list[dict[str, Any]] = [
    Person.model_json_schema(),
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"]},
    {"type": "string", "minLength": 3, "maxLength": 10},
    {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
    {"type": "string", "pattern": "^[a-z]{2,5}-[0-9]+(x|y)?.$"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"allOf": [{"properties": {"x": {"type": "integer"}}}, {"anyOf": [{"properties": {"y": {"type": "string"}}}]}]},
    {"enum": [1, "two", None, {"a": [1]}]},
    {"const": "plain"},
    {"type": ["string", "integer", "null"]},
    {"oneOf": [{"type": "string"}, {"type": "number"}]},
    {},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "array", "items": {"type": "integer"}}}},
]


@pytest.mark.parametrize("schema", ORDINARY, ids=[json.dumps(s)[:40] for s in ORDINARY])
def test_gbnf_equals_llama_cpp_pythons(schema: dict[str, Any]) -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # only to compare; the server never imports it

    assert grammar.grammar_for_format(json.loads(json.dumps(schema))) == json_schema_to_gbnf(json.dumps(schema))


# Regex escapes upstream copies into GBNF that llama.cpp's parser refuses (a NULL grammar, which
# segfaults the sampler chain): here they become classes or plain characters.
ESCAPES = ["^\\d+$", "^\\w+@\\w+\\.com$", "^[\\d\\s]{1,5}$", "^\\S+$", "^\\/api\\/v[0-9]$", "^a\\.+$",
           "^[\\-\\]\\.]$", "^\\x41\\u00e9$", "^\"quoted\"\\\\$", "^[^\\d]$"]


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    import llama_cpp  # the native parser, only to check the grammars the server builds

    from skyllama.demo import smollm2_gguf

    llm = llama_cpp.Llama(str(smollm2_gguf()), vocab_only=True, verbose=False)
    yield llama_cpp.llama_model_get_vocab(llm._model.model)
    llm.close()


@pytest.mark.parametrize("schema", ORDINARY + [{"type": "string", "pattern": p} for p in ESCAPES]
                         + [{"const": "line\n\"quoted\" back\\slash"}, {"enum": ["a\"b", "c\\d"]},
                            {"type": "object", "properties": {"we\"ird": {"type": "null"}}, "required": ["we\"ird"]}]
                         + [{"type": "string", "maxLength": 1000}, {"type": "array", "maxItems": 1000, "items": {"type": "integer"}}],
                         ids=lambda s: json.dumps(s)[:40])
def test_every_grammar_built_parses_in_llama_cpp(vocab: Any, schema: dict[str, Any]) -> None:
    import llama_cpp

    gbnf = grammar.grammar_for_format(json.loads(json.dumps(schema)))
    assert gbnf
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    assert sampler, f"llama.cpp refused the grammar:\n{gbnf[:2000]}"
    llama_cpp.llama_sampler_free(sampler)


def test_json_format_is_llama_cpps_json_grammar() -> None:
    from llama_cpp.llama_grammar import JSON_GBNF

    assert grammar.grammar_for_format("json") == JSON_GBNF
    assert grammar.grammar_for_format(None) is None and grammar.grammar_for_format("") is None
    with pytest.raises(BadRequest, match="expected \"json\" or a JSON schema"):
        grammar.grammar_for_format("yaml")


def test_a_recursive_pydantic_model_converts() -> None:
    class Tree(BaseModel):
        colour: Colour
        children: list[Tree] = []

    gbnf = grammar.grammar_for_format(Tree.model_json_schema())
    assert gbnf and "root ::= Tree" in gbnf and "Tree-children-item ::= Tree" in gbnf


def test_building_a_grammar_never_imports_llama_cpp() -> None:
    code = ("import sys; from skyllama.services import inference; from skyllama.engine.grammar import "
            "grammar_for_format; grammar_for_format({'type': 'object', 'properties': {'a': {'type': 'string'}}}); "
            "grammar_for_format('json'); assert 'llama_cpp' not in sys.modules, 'llama_cpp was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_pydantic_schema_constrains_the_real_model(demo_server: RunningServer) -> None:
    schema = Person.model_json_schema()
    r = httpx.post(demo_server.url + "/api/chat", timeout=120, json={
        "model": MODEL, "stream": False, "format": schema,
        "messages": [{"role": "user", "content": "Describe a person with two pets as JSON."}],
        "options": {"temperature": 0, "seed": 1, "num_predict": 400, "num_ctx": 1024}})
    assert r.status_code == 200, r.text
    person = Person.model_validate_json(r.json()["message"]["content"])
    assert isinstance(person.favourite, Colour) and len(person.pets) <= 2
