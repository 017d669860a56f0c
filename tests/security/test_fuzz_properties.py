"""Property-based fuzzing (hypothesis) of the value parsers every request goes through: names,
digests, durations, templates (Go and Jinja) and options. Each parser either returns a valid value
or raises its own 4xx error type: never another exception, never a hang. ``slow`` runs many more
examples (``pytest -m slow tests/security/test_fuzz_properties.py``)."""

from __future__ import annotations

import math
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyllama.digests import Digest
from skyllama.durations import parse_duration
from skyllama.errors import BadRequest, InvalidDigest, InvalidDuration, InvalidName
from skyllama.names import ModelName
from skyllama.options import OPTIONS, parse_request_options, validate_parameters
from skyllama.templates.errors import TemplateError
from skyllama.templates.gotemplate import parse as parse_go
from skyllama.templates.jinja import render_jinja

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4), max_leaves=10)
name_chars = st.text(string.ascii_letters + string.digits + "_.-:/@ %\\\x00\u0130\u212a", max_size=60)
go_pieces = st.lists(st.sampled_from(["{{", "}}", " .Prompt ", " if ", " range ", " end ", " else ", "$x := ",
                                      " .Messages ", "(", ")", "|", " len ", ' "s" ', " 1 ", "-", " index ",
                                      " slice ", " printf ", "%d", " call ", " .System ", " with ", " define ",
                                      " template ", " block ", "x", "\n"]), max_size=25).map("".join)
jinja_pieces = st.lists(st.sampled_from(["{{", "}}", "{%", "%}", " messages ", " for m in messages ", " endfor ",
                                         " if ", " endif ", " m.content ", " | ", " upper ", " range(5) ", " * ",
                                         " 99 ", " ~ ", " '__class__' ", ".__mro__", " lipsum ", " set x = ",
                                         " raise_exception('x') ", " loop.index ", "x", "\n", "(", ")", "[", "]"]),
                        max_size=25).map("".join)


def check_name(text: str) -> None:
    try:
        name = ModelName.parse(text)
    except InvalidName:
        return
    parts = name.path_parts()
    assert all(PART.fullmatch(p) for p in parts[1:]) and ".." not in parts
    assert ModelName.parse(str(name)).key == name.key == ModelName.parse(str(name).upper()).key
    assert ModelName.from_path_parts(parts).key == name.key


def check_digest(text: str) -> None:
    try:
        d = Digest.parse(text)
    except InvalidDigest:
        return
    assert re.fullmatch(r"[0-9a-f]{64}", d.hex, flags=re.ASCII) and Digest.parse(d.filename) == d


def check_duration(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except InvalidDuration:
        return
    assert seconds >= 0 and not math.isnan(seconds)


def check_options(raw: object) -> None:
    for fn in (parse_request_options, validate_parameters):
        try:
            out = fn(raw)
        except BadRequest:
            continue
        assert isinstance(out, dict) and set(out) <= set(OPTIONS)


def check_go(text: str) -> None:
    try:
        parse_go(text).execute({"Prompt": "hi", "System": "s", "Messages": [{"Role": "user", "Content": "x"}]},
                               timeout=1.0)
    except TemplateError:
        pass


def check_jinja(text: str) -> None:
    try:
        render_jinja(text, [{"role": "user", "content": "hi"}], timeout=1.0)
    except TemplateError:
        pass


CASES = [
    (check_name, name_chars | st.text(max_size=40)),
    (check_digest, st.text(max_size=80) | st.builds("sha256{}{}".format, st.sampled_from(":-_"),
                                                   st.text("0123456789abcdefABCDEF\u0660", min_size=63,
                                                           max_size=65))),
    (check_duration, json_values | st.text("0123456789.-+hmsuµn ", max_size=20)),
    (check_options, json_values | st.dictionaries(st.sampled_from(sorted(OPTIONS)), json_values, max_size=6)),
    (check_go, go_pieces | st.text(max_size=40)),
    (check_jinja, jinja_pieces),
]
IDS = ["names", "digests", "durations", "options", "go-templates", "jinja-templates"]


@pytest.mark.parametrize(("check", "strategy"), CASES, ids=IDS)
def test_parsers_only_raise_their_own_4xx(check: object, strategy: st.SearchStrategy) -> None:
    FAST(given(strategy)(check))()  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize(("check", "strategy"), CASES, ids=IDS)
def test_parsers_only_raise_their_own_4xx_long(check: object, strategy: st.SearchStrategy) -> None:
    LONG(given(strategy)(check))()  # type: ignore[operator]
