import pytest

from skyllama.errors import InvalidOption
from skyllama.options import format_parameters, parse_request_options, validate_parameters


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
