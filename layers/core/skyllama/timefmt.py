"""Timestamps as Ollama writes them (RFC 3339 with fractional seconds, Go's ``RFC3339Nano``)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | float) -> str:
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, tz=UTC)
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(tz=UTC))
