"""keep_alive, the one place that decides it: how long a loaded model stays, and when it expires.

A :class:`KeepAlive` is what a request (or ``OLLAMA_KEEP_ALIVE``, or a ``SKYLLAMA_PRELOAD`` entry)
asks for: ``0`` unloads as soon as the model is idle, a positive duration keeps it that long after
the request ends, and **forever** never expires. Its forms:

- **Ollama's wire** (:meth:`KeepAlive.parse`): a number of seconds, a numeric string, or a Go
  duration string (``"5m"``, ``"1h30m"``); a negative value means forever. Anything else is
  :class:`~skyllama.errors.InvalidDuration` (a 400).
- **skyllama's records and warm-up events** (:meth:`KeepAlive.to_wire` / :meth:`KeepAlive.from_wire`):
  seconds as a number, ``-1`` for forever (JSON and DynamoDB have no infinity). An expiry time
  is stored the same way (:func:`expiry_to_wire` / :func:`expiry_from_wire`).

An expiry is epoch seconds as a float, ``math.inf`` for forever (:meth:`KeepAlive.expires_at`),
so comparisons and ``min``/``max`` need no special case. ``/api/ps`` shows it as RFC 3339
(:func:`ps_expires_at`); for forever Ollama shows now plus Go's largest duration, and so does this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from .durations import MAX_SECONDS, format_duration, parse_duration
from .errors import InvalidDuration
from .timefmt import rfc3339

# Go's time.Duration(math.MaxInt64): what Ollama adds to "now" for a model that never expires.
FOREVER_DELTA = timedelta(microseconds=(2**63 - 1) // 1000)
# The number records and warm-up events carry for forever (a keep_alive or an expiry).
WIRE_FOREVER = -1


def _number(value: object) -> float:
    """A JSON number (``int``/``float``, never a ``bool`` or NaN), or :class:`InvalidDuration`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidDuration(f"invalid duration {value!r}")
    return float(value)


@dataclass(frozen=True)
class KeepAlive:
    """How long a model stays loaded after a request: seconds (``>= 0``), ``math.inf`` for forever.

    Build one with :meth:`parse`, :meth:`from_wire`, :meth:`of_seconds` or :data:`FOREVER`.
    """

    seconds: float

    FOREVER: ClassVar[KeepAlive]
    UNLOAD_NOW: ClassVar[KeepAlive]

    def __post_init__(self) -> None:
        if math.isnan(self.seconds) or self.seconds < 0:
            raise InvalidDuration(f"invalid keep_alive {self.seconds!r}")

    @classmethod
    def of_seconds(cls, seconds: float) -> KeepAlive:
        """Seconds as Ollama reads a number: negative (or infinite) is forever; at most a century."""
        return cls.FOREVER if seconds < 0 or math.isinf(seconds) else cls(min(float(seconds), MAX_SECONDS))

    @classmethod
    def parse(cls, value: object) -> KeepAlive:
        """Any form Ollama accepts (number, numeric string, Go duration); :class:`InvalidDuration` if none."""
        return cls.of_seconds(parse_duration(value))

    @classmethod
    def from_wire(cls, value: object) -> KeepAlive:
        """The inverse of :meth:`to_wire`: a number of seconds, negative for forever.

        A string here was not written by skyllama: it is :class:`InvalidDuration`, like any non-number.
        """
        return cls.of_seconds(_number(value))

    def to_wire(self) -> float:
        """Seconds, or ``-1`` for forever: what records and warm-up events carry (Ollama reads it too)."""
        return WIRE_FOREVER if self.is_forever else self.seconds

    @property
    def is_forever(self) -> bool:
        return math.isinf(self.seconds)

    @property
    def unload_now(self) -> bool:
        """``0``: the model goes as soon as no request uses it."""
        return self.seconds == 0

    def expires_at(self, now: float) -> float:
        """When a model used until ``now`` (epoch seconds) expires; ``math.inf`` when kept forever."""
        return math.inf if self.is_forever else now + self.seconds

    def outlasts(self, seconds: float) -> bool:
        """Longer than ``seconds``; forever outlasts everything, even an infinite threshold."""
        return self.is_forever or self.seconds > seconds

    def __str__(self) -> str:
        """For reasons and logs: ``forever`` or ``600s``."""
        return "forever" if self.is_forever else f"{self.seconds:g}s"

    def go(self) -> str:
        """A Go-style duration (``5m0s``), or ``-1`` for forever."""
        return format_duration(self.seconds)


KeepAlive.FOREVER = KeepAlive(math.inf)
KeepAlive.UNLOAD_NOW = KeepAlive(0.0)


def expiry_to_wire(expires_at: float) -> float:
    """An expiry (epoch seconds, ``math.inf`` for forever) as records and warm-up events carry it."""
    return WIRE_FOREVER if math.isinf(expires_at) else expires_at


def expiry_from_wire(value: object) -> float:
    """The inverse of :func:`expiry_to_wire` (negative: forever); :class:`InvalidDuration` if no number."""
    number = _number(value)
    return math.inf if number < 0 else number


def ps_expires_at(expires_at: float, now: float) -> str:
    """``/api/ps``'s ``expires_at`` (RFC 3339); forever is ``now`` plus Go's largest duration, as Ollama shows it."""
    if not math.isinf(expires_at):
        try:
            return rfc3339(datetime.fromtimestamp(expires_at, tz=UTC))
        except (OverflowError, OSError, ValueError):  # past any calendar (a hand-made record): forever
            pass
    return rfc3339(datetime.fromtimestamp(now, tz=UTC) + FOREVER_DELTA)
