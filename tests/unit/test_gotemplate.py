"""The Go text/template engine against outputs Go itself produces."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyllama.templates.errors import TemplateError
from skyllama.templates.gotemplate import parse

DATA = {"L": ["a", "b"], "N": [1, 2, 3, 4, 5], "M": {"b": 1, "a": "<x&y>"}, "S": "héllo", "E": [], "Z": 0,
        "F": 3.14159, "Nested": {"Inner": {"Name": "n"}}}

CASES = [
    # literals
    ("{{ 1 }}|{{ -2 }}|{{ 1.5 }}|{{ 1e6 }}|{{ 0x10 }}|{{ 017 }}|{{ 'a' }}", "1|-2|1.5|1e+06|16|15|97"),
    ('{{ "a\\tb" }}|{{ `raw\\n` }}|{{ true }}|{{ "\\u00e9" }}', "a\tb|raw\\n|true|é"),
    # trimming, exactly as Go: the marker needs a space, and eats all whitespace on its side
    ("a  \n {{- 1 -}} \n b", "a1b"),
    ("a {{- /* comment */ -}} b", "ab"),
    ("a {{/* comment */}} b", "a  b"),
    ("{{-3}}", "-3"),
    ("x\n{{- if true }}\ny{{ end -}}\n\nz", "x\nyz"),
    # fields, maps, variables
    ("{{ .Nested.Inner.Name }}|{{ $.Nested.Inner.Name }}|{{ with .Nested }}{{ .Inner.Name }}{{ end }}", "n|n|n"),
    ("{{ .Missing }}|{{ .Missing.Deeper }}|{{ print .Missing }}|{{ json .Missing }}", "<no value>|<no value>|<nil>|null"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
    ("{{ $x := .L }}{{ index $x 1 }}{{ (index .N 0) }}", "b1"),
    # if / else if / with
    ("{{ if .E }}a{{ else if .Z }}b{{ else if .L }}c{{ else }}d{{ end }}", "c"),
    ("{{ with .E }}x{{ else with .L }}{{ len . }}{{ end }}", "2"),
    ("{{ if and .L (not .E) }}yes{{ end }}|{{ and 1 0 2 }}|{{ or 0 \"\" \"x\" }}|{{ or 0 }}", "yes|0|x|0"),
    # range: lists, maps (sorted), ints, else, break/continue
    ("{{ range $i, $v := .L }}{{ $i }}={{ $v }},{{ end }}", "0=a,1=b,"),
    ("{{ range .E }}x{{ else }}empty{{ end }}", "empty"),
    ("{{ range $k, $v := .M }}{{ $k }}:{{ $v }};{{ end }}", "a:<x&y>;b:1;"),
    ("{{ range .N }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}", "13"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range $i, $_ := .L }}{{ $last := eq (len (slice $.L $i)) 1 }}{{ $last }} {{ end }}", "false true "),
    # comparison and builtins
    ("{{ eq 1 2 3 1 }}|{{ ne \"a\" \"b\" }}|{{ lt 1 2 }}|{{ le 2 2 }}|{{ gt \"b\" \"a\" }}|{{ ge 1 2 }}",
     "true|true|true|true|true|false"),
    ("{{ eq .Missing \"x\" }}", "false"),
    ("{{ len .S }}|{{ len .L }}|{{ len .M }}|{{ slice \"hello\" 1 3 }}|{{ slice .N 3 }}|{{ index .M \"b\" }}",
     "6|2|2|el|[4 5]|1"),
    ('{{ printf "%05.2f|%x|%q|%v|%s|%d" .F 255 "hi" .L "s" 7 }}', '03.14|ff|"hi"|[a b]|s|7'),
    ('{{ printf "%d" "x" }}|{{ printf "%s %s" "a" }}|{{ printf "%s" "a" "b" }}',
     "%!d(string=x)|a %!s(MISSING)|a%!(EXTRA string=b)"),
    ('{{ print 1 2 "a" 3 }}|{{ println "a" 1 }}', "1 2a3|a 1\n"),
    ("{{ .L }}|{{ .M }}|{{ .N | len }}|{{ \"x\" | printf \"%s-%s\" \"y\" }}", "[a b]|map[a:<x&y> b:1]|5|y-x"),
    ("{{ json .M }}|{{ json .F }}|{{ json .L }}", '{"a":"\\u003cx\\u0026y\\u003e","b":1}|3.14159|["a","b"]'),
    ('{{ html "<a&\'\\">" }}|{{ urlquery "a b&c" }}|{{ js "a\'<" }}', "&lt;a&amp;&#39;&#34;&gt;|a+b%26c|a\\'\\u003C"),
    # float formatting as Go's %v
    ("{{ 100000.0 }}|{{ 1e21 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 1234567.0 }}", "100000|1e+21|0.0001|1e-05|1.234567e+06"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_renders_like_go(text: str, expected: str) -> None:
    assert parse(text).execute(DATA) == expected


PARSE_ERRORS = [
    ("{{ .Prompt ", "unclosed action"),
    ("{{ foo }}", 'function "foo" not defined'),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ if true }}x", "unexpected EOF"),
    ("{{ if }}x{{ end }}", "missing value for if"),
    ("{{ break }}", "{{break}} outside {{range}}"),
    ("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", "undefined variable"),
    ('{{define "x"}}{{end}}', "not supported"),
    ("{{ /* c */ }}", "unexpected '/' in command"),
    ("{{/* c */ x }}", "comment ends before closing delimiter"),
    ('{{ "abc }}', "unterminated quoted string"),
    ("{{ 3 | 4 }}", "non executable command in pipeline stage 2"),
    ("{{" + "(" * 200 + "1" + ")" * 200 + "}}", "nesting too deep"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors_are_template_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("(", r"\(")) as e:
        parse(text)
    assert e.value.status == 400
    assert "Traceback" not in str(e.value)


EXEC_ERRORS = [
    ('{{ eq 1 "a" }}', "incompatible types for comparison"),
    ("{{ .S.Field }}", "can't evaluate field Field in type string"),
    ("{{ range .F }}{{ end }}", "range can't iterate over 3.14159"),
    ("{{ index .L 5 }}", "index out of range: 5"),
    ("{{ len 3 }}", "len of type int"),
    ("{{ .L 1 }}", "L is not a method but has arguments"),
    ("{{ $ 1 }}", "can't give argument to non-function"),
    ("{{ nil }}", "nil is not a command"),
    ("{{ call .L }}", "not supported"),
]


@pytest.mark.parametrize(("text", "message"), EXEC_ERRORS)
def test_execution_errors_are_template_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(text).execute(DATA)


def test_parse_is_cached() -> None:
    assert parse("{{ .A }}") is parse("{{ .A }}")


def test_endless_loop_is_stopped_by_the_time_limit() -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        parse("{{ range 1000000000 }}{{ end }}").execute({}, timeout=0.2)
    assert time.monotonic() - start < 2


def test_huge_output_is_refused() -> None:
    with pytest.raises(TemplateError, match="larger than"):
        parse("{{ range 100000000 }}xxxxxxxxxx{{ end }}").execute({}, max_output=1 << 20)


def test_huge_values_in_variables_are_refused() -> None:
    doubling = '{{ $s := "xxxxxxxxxx" }}{{ range 30 }}{{ $s = printf "%s%s" $s $s }}{{ end }}'
    with pytest.raises(TemplateError, match="larger than"):
        parse(doubling).execute({}, max_output=1 << 20)


@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_actions_renders_to_itself(text: str) -> None:
    assert parse(text).execute({}) == text


TEMPLATE_ALPHABET = st.sampled_from(list("{}{}.$-|()\"`' abcifelsendrangwth=:,0123\n/*") + ["{{", "}}", " -}}", "{{- "])


@settings(max_examples=300, deadline=None)
@given(st.lists(TEMPLATE_ALPHABET, max_size=40).map("".join))
def test_random_templates_only_ever_raise_template_error(text: str) -> None:
    try:
        parse(text).execute(DATA, timeout=0.5)
    except TemplateError:
        pass
