"""SECURITY.md T-10: GGUF chat templates run sandboxed, with time and size bounds."""

from __future__ import annotations

import time

import pytest

from skyllama.templates.errors import TemplateError
from skyllama.templates.jinja import describe_jinja_template, render_jinja

MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_renders_a_chat_template_like_transformers() -> None:
    assert render_jinja(CHATML, MSGS) == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert render_jinja(CHATML, MSGS, add_generation_prompt=False).endswith("hi<|im_end|>\n")


def test_globals_and_filters_follow_transformers() -> None:
    tmpl = "{{ bos_token }}{{ tools[0] | tojson }}{{ eos_token }}{{ strftime_now('%Y') | length }}"
    assert render_jinja(tmpl, MSGS, [{"name": "f", "x": "<"}], bos_token="<s>", eos_token="</s>") == '<s>{"name": "f", "x": "<"}</s>4'
    with pytest.raises(TemplateError, match="roles must alternate"):
        render_jinja("{{ raise_exception('roles must alternate') }}", MSGS)


def test_tool_calls_are_given_in_openai_shape() -> None:
    msgs = [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": "ok", "tool_name": "f"}]
    tmpl = "{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.type }}:{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}{{ m.name }}{% endfor %}"
    assert render_jinja(tmpl, msgs) == 'function:f{"a": 1}f'


ESCAPES = [
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ messages.append(1) }}",
    "{% set x = messages.pop() %}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_sandbox_escapes_are_refused(payload: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render_jinja(payload, MSGS)


BOMBS = [
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 10**(10**10) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '{:999999999}'.format(1) }}",
    "{{ '%999999999s' | format(1) }}",
    "{{ ' ' | center(999999999) }}",
    "{{ ' '.ljust(999999999) }}",
    "{{ ('a' * 1000000) | replace('a', 'aaaaaaaaaaaaaaaaaaaa') }}",
]


@pytest.mark.parametrize("payload", BOMBS)
def test_size_bombs_fail_fast(payload: str) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError):
        render_jinja(payload, MSGS)
    assert time.monotonic() - start < 1


def test_endless_work_is_stopped_by_the_time_limit() -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        render_jinja("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", MSGS, timeout=0.3)
    assert time.monotonic() - start < 2


def test_output_size_is_bounded() -> None:
    with pytest.raises(TemplateError, match="larger than"):
        render_jinja("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", MSGS, max_output=1 << 20)


def test_recursion_and_errors_become_template_errors() -> None:
    for bad in ["{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{% if %}", "{{ 1 / 0 }}", "{{ x.y.z }}"]:
        with pytest.raises(TemplateError) as e:
            render_jinja(bad, MSGS)
        assert "Traceback" not in str(e.value) and e.value.status == 400


def test_describe_jinja_template_matches_ollama_heuristics() -> None:
    assert describe_jinja_template("{% if tools %}{% endif %}")["capabilities"] == ["tools"]
    assert describe_jinja_template("<think>{{ x }}</think>")["capabilities"] == ["thinking"]
    assert describe_jinja_template(CHATML)["capabilities"] == []
