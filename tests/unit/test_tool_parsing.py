"""Tool calls in model output, as Ollama's tools package parses them (cases from tools_test.go)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyllama.templates.gotemplate import parse
from skyllama.templates.tools import ToolCall, ToolCallParser, parse_tag

TOOLS = [{"type": "function", "function": {"name": n}} for n in
         ("get_temperature", "get_conditions", "say_hello", "say_hello_world", "get_address", "add")]

QWEN = ('{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
        '"arguments": {{ .Function.Arguments }}}{{ end }}</tool_call>{{ end }}')
MISTRAL = '{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}]{{ end }}'
LLAMA31 = '{{- if .ToolCalls }}\n{{ range .ToolCalls }}\n{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}{{ end }}'


@pytest.mark.parametrize(("template", "tag"), [
    (QWEN, "<tool_call>"), (MISTRAL, "[TOOL_CALLS] ["), (LLAMA31, "{"), ("{{ .Prompt }}", "{"),
    ("{{ range .Messages }}{{ if eq .Role \"assistant\" }}{{ if .ToolCalls }}<|tool|>{{ end }}{{ end }}{{ end }}", "<|tool|>"),
])
def test_tag_is_read_from_the_template(template: str, tag: str) -> None:
    assert parse_tag(parse(template)) == tag


def run(chunks: list[str], tag: str) -> tuple[str, list[ToolCall]]:
    parser = ToolCallParser(TOOLS, tag=tag)
    content, calls = "", []
    for c in chunks:
        text, new = parser.feed(c)
        content += text
        calls += new
    return content + parser.finish(), calls


def names_args(calls: list[ToolCall]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, c.arguments) for c in calls]


CASES = [
    ("plain text", ["Hello, how can I help you today?"], "<tool_call>", "Hello, how can I help you today?", []),
    ("empty", [""], "<tool_call>", "", []),
    ("tool call", ['<tool_call>{"name": "get_conditions", "arguments": {"location": "San Francisco"}}</tool_call>'],
     "<tool_call>", "", [("get_conditions", {"location": "San Francisco"})]),
    ("empty args", ['<tool_call>{"name": "get_conditions", "arguments": {}}</tool_call>'], "<tool_call>", "",
     [("get_conditions", {})]),
    ("text before", ['Let me check. <tool_call>{"name": "get_temperature", "arguments": {"city": "New York"}}</tool_call>'],
     "<tool_call>", "Let me check. ", [("get_temperature", {"city": "New York"})]),
    ("name in text only", ["I'll use the say_hello tool. "], "<tool_call>", "I'll use the say_hello tool. ", []),
    ("list", ['[TOOL_CALLS] [{"name": "get_temperature", "arguments": {"city": "London"}}, '
              '{"name": "get_conditions", "arguments": {"location": "Tokyo"}}]'], "[TOOL_CALLS] [", "",
     [("get_temperature", {"city": "London"}), ("get_conditions", {"location": "Tokyo"})]),
    ("parameters and string args", ['{"name": "add", "parameters": "{\\"a\\": \\"5\\"}"}'], "{", "", [("add", {"a": "5"})]),
    ("args before name", ['<tool_call>{"arguments": {"a": "5", "b": "10"}, "name": "add"}</tool_call>'], "<tool_call>", "",
     [("add", {"a": "5", "b": "10"})]),
    ("json streamed", ["{", '"name": "get_temperature",', '"arguments": {', '"city": "Tokyo"', "}", "}"], "{", "",
     [("get_temperature", {"city": "Tokyo"})]),
    ("json not a tool", ["{", '"name": "search", ', '"arguments": {"q": "x"}', "}"], "{",
     '{"name": "search", "arguments": {"q": "x"}}', []),
    ("json after text", ['for { fmt.Println("hello") }'], "{", 'for { fmt.Println("hello") }', []),
    ("collision", ['<tool_call>{"name": "say_hello_world", "arguments": {}}'], "<tool_call>", "", [("say_hello_world", {})]),
    ("tag split", ["Sure. <tool", "_call>", '{"name": "add", "arguments": {"a": 1}}'], "<tool_call>", "Sure. ", [("add", {"a": 1})]),
]


@pytest.mark.parametrize(("name", "chunks", "tag", "content", "calls"), CASES, ids=[c[0] for c in CASES])
def test_parses_like_ollama(name: str, chunks: list[str], tag: str, content: str, calls: list[Any]) -> None:
    got_content, got_calls = run(chunks, tag)
    assert got_content == content
    assert names_args(got_calls) == calls
    assert [c.index for c in got_calls] == list(range(len(calls)))
    assert all(re.fullmatch(r"call_[a-z0-9]{8}", c.id) for c in got_calls)
    assert all(isinstance(c.arguments, dict) for c in got_calls)


def test_text_that_may_start_the_tag_is_held_back_then_released() -> None:
    parser = ToolCallParser(TOOLS, tag="<tool_call>")
    assert parser.feed("Hi <tool") == ("Hi ", [])
    assert parser.feed("box> ok") == ("<toolbox> ok", [])


def test_to_api_shape() -> None:
    call = ToolCall("add", {"a": 1}, 0, "call_abcdefgh")
    assert call.to_api() == {"id": "call_abcdefgh", "function": {"index": 0, "name": "add", "arguments": {"a": 1}}}


@given(st.text(alphabet=st.characters(blacklist_characters="<{["), max_size=200), st.integers(1, 20))
def test_text_without_tag_characters_flows_through_unchanged(text: str, size: int) -> None:
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert run(chunks, "<tool_call>") == (text, [])


# Tool calls are never lost (issue 20): where Ollama's parser answers empty content and no calls,
# the text of a block that did not become a call is content at the end.
NEVER_LOST = [
    ("unoffered tool", ['<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>'], "<tool_call>",
     '<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>', []),
    ("unoffered tool mentioning an offered one", ['<tool_call>{"name": "search", "arguments": {"q": "add"}}</tool_call>'],
     "<tool_call>", '<tool_call>{"name": "search", "arguments": {"q": "add"}}</tool_call>', []),
    ("does not parse", ['<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>'], "<tool_call>",
     '<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>', []),
    ("streamed and unfinished", ["Sure. <tool", '_call>{"name": "add", ', '"arguments": {"a"'], "<tool_call>",
     'Sure. <tool_call>{"name": "add", "arguments": {"a"', []),
    ("good then unfinished", ['<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>\n<tool_call>{"name": "nope", "argu'],
     "<tool_call>", '<tool_call>{"name": "nope", "argu', [("add", {"a": 1})]),
    ("bad then good", ['<tool_call>{"name": "nope", "arguments": {"add": 1}}</tool_call><tool_call>'
                       '{"name": "add", "arguments": {"a": 2}}</tool_call>'], "<tool_call>",
     '<tool_call>{"name": "nope", "arguments": {"add": 1}}', [("add", {"a": 2})]),
    ("closing tag alone is dropped", ['<tool_call>{"name": "add", "arguments": {}}</tool_call>'], "<tool_call>", "",
     [("add", {})]),
]


@pytest.mark.parametrize(("name", "chunks", "tag", "content", "calls"), NEVER_LOST, ids=[c[0] for c in NEVER_LOST])
def test_a_block_that_is_no_call_stays_content(name: str, chunks: list[str], tag: str, content: str,
                                               calls: list[Any]) -> None:
    got_content, got_calls = run(chunks, tag)
    assert (got_content, names_args(got_calls)) == (content, calls)
