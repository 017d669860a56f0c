import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyllama.durations import FOREVER, format_duration, parse_duration
from skyllama.errors import InvalidDuration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("1.5h", 5400), ("2h45m30.5s", 9930.5),
        ("10s", 10), ("0", 0), (0, 0), (300, 300), (2.5, 2.5), ("300", 300), ("1us", 1e-6),
        ("1µs", 1e-6), ("7ns", 7e-9), (".5s", 0.5),
    ],
)
def test_parse(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, "-1", "-1m", -0.5, "-5h"])
def test_negative_is_forever(value: object) -> None:
    assert parse_duration(value) == FOREVER


@pytest.mark.parametrize("value", ["", "5", "m", "5 minutes", "5d", "1h-30m", "abc", True, None, [], {}, "1e400", float("nan")])
def test_invalid(value: object) -> None:
    if value == "5":
        assert parse_duration(value) == 5  # plain numbers are seconds
        return
    with pytest.raises(InvalidDuration):
        parse_duration(value)


def test_format() -> None:
    assert format_duration(300) == "5m0s" and format_duration(FOREVER) == "-1"


@given(st.integers(min_value=0, max_value=10**6))
def test_seconds_round_trip(n: int) -> None:
    assert parse_duration(n) == n and parse_duration(f"{n}s") == n


@given(st.text(max_size=30))
def test_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except InvalidDuration:
        return
    assert value >= 0 or math.isinf(value)
