"""Options: Ollama's types, and the bounds of :mod:`skyllama.option_bounds` (T-31)."""

import pytest

from skyllama.errors import InvalidOption
from skyllama.option_bounds import (
    OptionLimits,
    check_bounds,
    check_context_tokens,
    native_seed,
    option_bounds,
)
from skyllama.options import (
    OPTIONS,
    effective_options,
    format_parameters,
    parse_request_options,
    validate_parameters,
    validate_stored_parameters,
)


def test_request_options_types() -> None:
    opts = parse_request_options({"temperature": 1, "num_ctx": 2048.0, "stop": ["a"], "seed": 42,
                                  "use_mmap": False, "not_an_option": 5})
    assert opts == {"temperature": 1.0, "num_ctx": 2048, "stop": ["a"], "seed": 42, "use_mmap": False}


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": "hot"}, {"num_ctx": "2048"}, {"num_ctx": 1.5}, {"stop": [1]}, {"use_mmap": "yes"},
        {"top_k": True}, {"stop": ["x"] * 100}, "not an object", {"temperature": float("nan")},
    ],
)
def test_wrong_types_are_400(options: object) -> None:
    with pytest.raises(InvalidOption):
        parse_request_options(options)


@pytest.mark.parametrize(("options", "message"), [
    ({"stop": "x"}, 'option "stop" must be of type array'),
    ({"stop": ["x", 1]}, 'option "stop" must be of an array of strings'),
    ({"top_k": "many"}, 'option "top_k" must be of type integer'),
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"use_mmap": "yes"}, 'option "use_mmap" must be of type boolean'),
])
def test_wrong_types_are_worded_as_ollamas_from_map(options: dict, message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_request_options(options)
    assert info.value.message == message


def test_stored_and_create_stop_may_be_one_string() -> None:
    # a request's options are Ollama's FromMap (a string stop is refused); a model's stored
    # parameters and /api/create's are FormatParams' output, where one stop may be a string
    assert effective_options({"stop": "<end>"}, {}, OptionLimits(4096, 100, 1, 4))["stop"] == ["<end>"]
    assert validate_parameters({"stop": "<end>"}) == {"stop": ["<end>"]}


@pytest.mark.parametrize(("parameters", "message"), [
    ({"temperature": "hot"}, "invalid float value 'hot' for parameter 'temperature'"),
    ({"num_ctx": "big"}, "invalid int value 'big' for parameter 'num_ctx'"),
    ({"use_mmap": "yes"}, "invalid bool value 'yes' for parameter 'use_mmap'"),
])
def test_parameter_text_is_worded_as_ollamas_format_params(parameters: dict, message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        validate_parameters(parameters)
    assert info.value.message == message


def test_create_parameters() -> None:
    assert validate_parameters({"stop": "x", "temperature": "0.5"}) == {"stop": ["x"], "temperature": 0.5}
    with pytest.raises(InvalidOption):
        validate_parameters({"bogus": 1})


def test_show_format() -> None:
    text = format_parameters({"stop": ["<a>", "<b>"], "temperature": 0.2, "num_ctx": 2048})
    assert text.splitlines() == [
        "num_ctx                        2048",
        'stop                           "<a>"',
        'stop                           "<b>"',
        "temperature                    0.2",
    ]


# -- bounds (T-31) -----------------------------------------------------------------------------

LIMITS = OptionLimits(max_num_ctx=4096, max_num_predict=100, num_parallel=1, cpus=4)


def test_every_numeric_option_that_reaches_the_engine_has_a_bound() -> None:
    numeric = {k for k, (kind, _d) in OPTIONS.items() if kind in (int, float)}
    assert numeric - set(option_bounds(LIMITS)) == {"tfs_z"}  # never passed to the engine
    for key, (_kind, default) in OPTIONS.items():
        bound = option_bounds(LIMITS).get(key)
        if bound is not None and default is not None:
            assert bound.holds(default), key  # Ollama's defaults are inside their bounds
        assert bound is None or bound.why


def test_bounds_come_from_the_limits_given() -> None:
    bounds = option_bounds(LIMITS)
    assert (bounds["num_thread"].low, bounds["num_thread"].high) == (0, 8)  # 0: default, 2 per core
    assert bounds["num_ctx"].high == bounds["num_keep"].high == bounds["repeat_last_n"].high == 4096
    assert bounds["num_predict"].high == 100
    assert option_bounds(OptionLimits(num_parallel=128))["num_parallel"].high == 128  # the operator's own
    assert option_bounds(OptionLimits())["num_parallel"].high == 64


@pytest.mark.parametrize(("options", "message"), [
    ({"num_thread": 1_000_000}, "option num_thread must be between 0 and 8"),
    ({"num_thread": 9}, "option num_thread must be between 0 and 8"),
    ({"num_ctx": 4097}, "option num_ctx must be between 0 and 4096"),
    ({"top_p": 1.01}, "option top_p must be between 0 and 1"),
    ({"mirostat": 3}, "option mirostat must be between 0 and 2"),
    ({"temperature": -0.5}, "option temperature must be between 0 and 100"),
    ({"seed": 2**63}, "option seed must be between"),
    ({"num_gpu": -2}, "option num_gpu must be between -1 and 65536"),
])
def test_out_of_range_is_invalid_option(options: dict, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse_request_options(options, LIMITS)
    with pytest.raises(InvalidOption, match=message.replace("option", "parameter")):
        validate_parameters(options, LIMITS)


def test_edges_and_non_numbers_pass() -> None:
    edges = {"num_thread": 8, "num_ctx": 0, "num_gpu": -1, "num_keep": -1, "repeat_last_n": -1, "top_p": 1.0,
             "mirostat": 2, "seed": -(2**63), "num_predict": -1, "use_mmap": False, "stop": ["x"]}
    check_bounds(edges, LIMITS)
    assert parse_request_options({"num_thread": 10**6}) == {"num_thread": 10**6}  # no limits: types only


def test_an_integer_too_big_for_a_float_is_a_type_error_not_a_crash() -> None:
    with pytest.raises(InvalidOption, match="temperature"):
        parse_request_options({"temperature": 10**400})


def test_stored_values_are_checked_unless_the_request_overrides_them() -> None:
    stored = {"num_thread": 1_000_000, "temperature": 0.1, "not_ours": 1}
    with pytest.raises(InvalidOption, match="model parameter num_thread .*override"):
        effective_options(stored, {}, LIMITS)
    merged = effective_options(stored, {"num_thread": 2}, LIMITS)
    assert merged["num_thread"] == 2 and merged["temperature"] == 0.1 and "not_ours" not in merged
    assert merged["top_k"] == 40  # defaults under both
    with pytest.raises(InvalidOption, match="num_ctx"):
        effective_options({"num_ctx": "lots"}, {}, LIMITS)


def test_stored_parameters_keep_unknown_names_and_check_known_ones() -> None:
    assert validate_stored_parameters({"num_ctx": 2048, "rope_whatever": 3}, LIMITS) == \
        {"num_ctx": 2048, "rope_whatever": 3}
    with pytest.raises(InvalidOption, match="parameter num_ctx"):
        validate_stored_parameters({"num_ctx": 8192}, LIMITS)


def test_native_seed_fits_a_uint32() -> None:
    assert [native_seed(s) for s in (-1, -5, 0, 42, 2**32, 2**32 + 7, 2**63 - 1)] == \
        [-1, -1, 0, 42, 0, 7, 2**32 - 1]


def test_context_tokens() -> None:
    check_context_tokens([0, 5, 9], 10, LIMITS)
    check_context_tokens([10**9], None, LIMITS)  # vocabulary unknown: only negatives are refused
    for bad in ([10], [-1], [1.0], [True], ["1"]):
        with pytest.raises(InvalidOption, match="context"):
            check_context_tokens(bad, 10, LIMITS)
    check_context_tokens([1] * LIMITS.max_context_tokens, 10, LIMITS)
    with pytest.raises(InvalidOption, match="more than the limit"):
        check_context_tokens([1] * (LIMITS.max_context_tokens + 1), 10, LIMITS)
