"""Values printed as the ``ollama`` CLI's Go code prints them: ``time.Duration``'s ``String``
(``1.2345678s``, ``12.345ms``, ``850µs``, ``2m3.5s``), ``%g`` for a float and ``%v`` for a decoded
JSON value (``[en fr]``, ``<nil>``, ``true``)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def _fraction(value: int, digits: int) -> tuple[int, str]:
    """Go's ``fmtFrac``: ``value`` split at ``digits`` decimals, trailing zeros (and a bare dot) dropped."""
    if digits == 0:
        return value, ""
    scale = 10**digits
    text = f"{value % scale:0{digits}d}".rstrip("0")
    return value // scale, f".{text}" if text else ""


def go_duration(nanoseconds: int) -> str:
    """``time.Duration(nanoseconds).String()``."""
    sign, u = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if u == 0:
        return "0s"
    if u < 1_000_000_000:
        digits, unit = (0, "ns") if u < 1_000 else (3, "µs") if u < 1_000_000 else (6, "ms")
        whole, frac = _fraction(u, digits)
        return f"{sign}{whole}{frac}{unit}"
    seconds, frac = _fraction(u, 9)
    minutes, hours = seconds // 60, seconds // 3600
    if hours:
        return f"{sign}{hours}h{minutes % 60}m{seconds % 60}{frac}s"
    if minutes:
        return f"{sign}{minutes}m{seconds % 60}{frac}s"
    return f"{sign}{seconds}{frac}s"


def go_float(value: float) -> str:
    """``%g`` (and ``%v``) of a float64, Go's ``strconv.FormatFloat(f, 'g', -1, 64)``: the shortest
    digits that read back, with an exponent when it is below -4 or 6 and up (``1e+06``, ``1e-05``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    parts = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, parts.digits)).rstrip("0")
    exponent = len(parts.digits) - 1 + int(parts.exponent)
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, rest = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1:]
    return f"{sign}{whole}{'.' + rest if rest else ''}"


def go_value(value: Any) -> str:
    """``fmt.Sprintf("%v", v)`` of a value ``encoding/json`` decoded into ``any``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(float(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)
