"""KeepAlive (skyllama.keep_alive): Ollama's wire forms in, skyllama's record form (-1: forever) out
and back, expiry from a fake 'now', and /api/ps's RFC 3339 expires_at (forever as Ollama shows it)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyllama.errors import InvalidDuration
from skyllama.keep_alive import KeepAlive, expiry_from_wire, expiry_to_wire, ps_expires_at

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300), ("1h30m", 5400), (300, 300), (2.5, 2.5), ("300", 300), ("0", 0), (0, 0), ("1.5h", 5400),
])
def test_ollama_wire_forms(value: object, seconds: float) -> None:
    keep_alive = KeepAlive.parse(value)
    assert keep_alive.seconds == pytest.approx(seconds) and not keep_alive.is_forever
    assert keep_alive.expires_at(NOW) == pytest.approx(NOW + seconds)


@pytest.mark.parametrize("value", [-1, "-1", "-1m", -0.5, "-5h", float("-inf")])
def test_negative_is_forever(value: object) -> None:
    keep_alive = KeepAlive.parse(value)
    assert keep_alive == KeepAlive.FOREVER and keep_alive.is_forever and not keep_alive.unload_now
    assert keep_alive.expires_at(NOW) == math.inf and str(keep_alive) == "forever"


def test_zero_unloads_now() -> None:
    assert KeepAlive.parse(0) == KeepAlive.UNLOAD_NOW and KeepAlive.parse("0s").unload_now
    assert KeepAlive.UNLOAD_NOW.expires_at(NOW) == NOW and not KeepAlive.parse("1ns").unload_now


@pytest.mark.parametrize("value", ["", "bogus", "5d", "1h-30m", True, None, [], {}, float("nan")])
def test_bad_values_are_invalid_duration(value: object) -> None:
    with pytest.raises(InvalidDuration) as raised:
        KeepAlive.parse(value)
    assert raised.value.status == 400


def test_record_form_round_trips_with_minus_one_for_forever() -> None:
    assert KeepAlive.FOREVER.to_wire() == -1 and KeepAlive.from_wire(-1) == KeepAlive.FOREVER
    assert KeepAlive.of_seconds(600).to_wire() == 600 and KeepAlive.from_wire(600) == KeepAlive.of_seconds(600)
    assert expiry_to_wire(math.inf) == -1 and expiry_from_wire(-1) == math.inf
    assert expiry_to_wire(NOW + 5) == NOW + 5 and expiry_from_wire(NOW + 5) == NOW + 5
    for not_written_by_skyllama in ("600", "soon", True, None, float("nan")):
        with pytest.raises(InvalidDuration):
            KeepAlive.from_wire(not_written_by_skyllama)
        with pytest.raises(InvalidDuration):
            expiry_from_wire(not_written_by_skyllama)


def test_only_one_forever_and_no_negative_keep_alive() -> None:
    assert KeepAlive.of_seconds(math.inf) == KeepAlive.of_seconds(-3) == KeepAlive.FOREVER
    with pytest.raises(InvalidDuration):
        KeepAlive(-1)
    assert KeepAlive.of_seconds(1e300).seconds == 100 * 365 * 24 * 3600.0  # capped: still a timestamp


def test_outlasts_a_threshold() -> None:
    assert KeepAlive.of_seconds(7200).outlasts(3600) and not KeepAlive.of_seconds(3600).outlasts(3600)
    assert KeepAlive.FOREVER.outlasts(math.inf)  # forever always needs provisioned capacity


def test_ps_expires_at_is_rfc3339_and_forever_is_now_plus_gos_largest_duration() -> None:
    assert ps_expires_at(NOW + 600, NOW) == "2027-01-15T08:10:00Z"
    assert ps_expires_at(math.inf, NOW).startswith("2319-04-27T")  # as Ollama shows a model kept forever
    assert ps_expires_at(1e300, NOW) == ps_expires_at(math.inf, NOW)  # past any calendar: never a 500


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True)))
def test_parse_gives_a_keep_alive_or_invalid_duration(value: object) -> None:
    try:
        keep_alive = KeepAlive.parse(value)
    except InvalidDuration:
        return
    assert keep_alive.is_forever or 0 <= keep_alive.seconds <= 100 * 365 * 24 * 3600.0
    assert KeepAlive.from_wire(keep_alive.to_wire()) == keep_alive
