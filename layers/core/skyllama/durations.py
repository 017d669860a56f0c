"""Durations as Ollama reads them (``api.Duration``): keep_alive and friends.

- a number (int or float, or a string of digits) is seconds;
- a string is a Go duration: ``300ms``, ``1.5h``, ``1h30m``, ``-1m`` (units ns, us, µs, ms, s, m, h);
- a negative value means forever; ``0`` means now.

The result is seconds as a float, with ``math.inf`` for forever.
"""

from __future__ import annotations

import math
import re

from .errors import InvalidDuration

FOREVER = math.inf

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")
# Far enough for any keep_alive and still a valid timestamp everywhere (Ollama caps similarly).
MAX_SECONDS = 100 * 365 * 24 * 3600.0


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string into seconds (sign kept). Raises :class:`InvalidDuration`."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if s[:1] and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise InvalidDuration(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _COMPONENT.match(s, pos)
        if m is None:
            raise InvalidDuration(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_duration(value: object) -> float:
    """Seconds for a keep_alive-style value; ``math.inf`` when negative (forever).

    Accepts numbers (seconds), numeric strings (seconds) and Go duration strings.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidDuration(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds):
            raise InvalidDuration("invalid duration NaN")
    elif isinstance(value, str):
        if _NUMBER.fullmatch(value.strip()):
            seconds = float(value.strip())
        else:
            seconds = parse_go_duration(value)
    else:
        raise InvalidDuration(f"invalid duration of type {type(value).__name__}")
    if seconds < 0:
        return FOREVER
    return min(seconds, MAX_SECONDS) if seconds != FOREVER else FOREVER


def format_duration(seconds: float) -> str:
    """A Go-style duration string (``5m0s``), or ``-1`` for forever; used in logs and docs."""
    if seconds == FOREVER:
        return "-1"
    whole = int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    frac = seconds - whole
    s_text = f"{s + frac:g}s"
    if h:
        return f"{h}h{m}m{s_text}"
    if m:
        return f"{m}m{s_text}"
    return s_text
