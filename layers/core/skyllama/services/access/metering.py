"""Per-request usage: records, daily counters, quotas and CloudWatch EMF metrics.

Each request with a principal leaves, in the :class:`~skyllama.ports.StateStore`:

- a record of kind ``usage`` under ``<key_id>#<yyyy-mm-dd>#<model>#<request id>`` (owner, key,
  model, route, method, status, duration in ns, prompt/completion tokens, embedding inputs),
  kept :data:`RETENTION_DAYS` days;
- counters of kind ``usage_day`` under ``<key_id>#<yyyy-mm-dd>#<model>`` (requests, tokens,
  inputs, duration), which ``GET /api/usage`` and the tokens-per-day quota read;
- with a requests-per-minute quota, a counter of kind ``usage_rpm`` per key and minute.

Days are UTC. Quotas are checked before a request runs; its tokens count once it has finished,
so a request that starts under the daily limit may end above it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ...errors import TooManyRequests
from ...ports import Clock, StateStore
from .keys import Principal

log = logging.getLogger(__name__)

RECORD_KIND = "usage"
DAY_KIND = "usage_day"
MINUTE_KIND = "usage_rpm"
RETENTION_DAYS = 90
COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "embedding_inputs", "duration_ns")


@dataclass
class UsageRecord:
    """What one request used, as recorded."""

    owner: str
    key_id: str
    model: str
    route: str
    method: str
    status: int
    duration_ns: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_inputs: int = 0
    request_id: str = ""
    at: float = 0.0


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _clean(model: str) -> str:
    return (model or "-").replace("#", "_")[:300]


class Meter:
    """Records usage and enforces quotas against one state store."""

    def __init__(self, state: StateStore, *, clock: Clock | None = None, emf: bool = False) -> None:
        self.state = state
        self.clock = clock or Clock()
        self.emf = emf
        if emf:  # imported now, at start, never inside a request (and never where EMF is off)
            import aws_lambda_powertools.metrics  # noqa: F401

    # -- quotas --------------------------------------------------------------------------------

    def check_quota(self, principal: Principal) -> None:
        """Raise :class:`TooManyRequests` (429 + Retry-After) when a quota of the key is used up.

        Counts this request against the requests-per-minute quota.
        """
        now = self.clock.now()
        rpm = principal.quotas.get("rpm")
        if rpm:
            minute = int(now // 60)
            count = self.state.increment(MINUTE_KIND, f"{principal.key_id}#{minute}", "requests", 1,
                                         expires_at=(minute + 2) * 60)
            if count > rpm:
                retry = max(1, int((minute + 1) * 60 - now + 0.999))
                raise TooManyRequests(f"quota exceeded: {rpm} requests per minute", retry_after=retry)
        per_day = principal.quotas.get("tokens_per_day")
        if per_day:
            used = self.tokens_today(principal.key_id, now)
            if used >= per_day:
                tomorrow = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0,
                                                                    microsecond=0) + timedelta(days=1)
                retry = max(1, int(tomorrow.timestamp() - now + 0.999))
                raise TooManyRequests(f"quota exceeded: {per_day} tokens per day", retry_after=retry)

    def tokens_today(self, key_id: str, now: float | None = None) -> int:
        """Prompt plus completion tokens the key used today (UTC)."""
        day = _date(self.clock.now() if now is None else now)
        total = 0.0
        for _key, item in self.state.query(DAY_KIND, f"{key_id}#{day}#"):
            total += float(item.get("prompt_tokens", 0)) + float(item.get("completion_tokens", 0))
        return int(total)

    # -- recording -----------------------------------------------------------------------------

    def record(self, usage: UsageRecord) -> None:
        """Store the record, add it to the day's counters and emit EMF metrics (when enabled)."""
        usage.at = usage.at or self.clock.now()
        usage.request_id = usage.request_id or uuid.uuid4().hex
        usage.model = _clean(usage.model)
        day = _date(usage.at)
        expires = usage.at + RETENTION_DAYS * 86400
        self.state.put(RECORD_KIND, f"{usage.key_id}#{day}#{usage.model}#{usage.request_id}",
                       {**asdict(usage), "date": day}, expires_at=expires)
        counter_key = f"{usage.key_id}#{day}#{usage.model}"
        values = {"requests": 1, "prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens,
                  "embedding_inputs": usage.embedding_inputs, "duration_ns": usage.duration_ns}
        for name in COUNTERS:
            if values[name] or name == "requests":
                self.state.increment(DAY_KIND, counter_key, name, values[name], expires_at=expires)
        if self.emf:
            emit_emf(usage)

    def records(self, key_id: str, day: str | None = None) -> list[dict[str, Any]]:
        """The raw usage records of a key (optionally of one day), oldest key first."""
        prefix = f"{key_id}#{day}#" if day else f"{key_id}#"
        return [item for _key, item in self.state.query(RECORD_KIND, prefix)]

    def summary(self, key_id: str, days: int = 7) -> list[dict[str, Any]]:
        """``[{"date", "models": [{"model", "requests", ...}]}]`` for the last ``days`` UTC days."""
        now = self.clock.now()
        first = _date(now - (days - 1) * 86400)
        by_day: dict[str, list[dict[str, Any]]] = {}
        for key, item in self.state.query(DAY_KIND, f"{key_id}#"):
            _kid, day, model = key.split("#", 2)
            if day < first:
                continue
            entry: dict[str, Any] = {"model": model}
            entry.update({name: int(item.get(name, 0)) for name in COUNTERS})
            by_day.setdefault(day, []).append(entry)
        return [{"date": day, "models": sorted(by_day[day], key=lambda m: m["model"])} for day in sorted(by_day)]


def emit_emf(usage: UsageRecord) -> None:
    """Print one CloudWatch EMF document (namespace ``skyllama``; dimension sets ``[route, service]``
    and ``[service]``) to stdout."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    try:
        metrics = EphemeralMetrics(namespace="skyllama", service="skyllama")
        metrics.add_dimension(name="route", value=usage.route or "-")
        # a second dimension set, [service] alone: the all-routes figures the dashboard's totals
        # and the error-rate alarm read (an alarm cannot sum a SEARCH over every route)
        metrics.add_dimensions(service="skyllama")
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PromptTokens", unit=MetricUnit.Count, value=usage.prompt_tokens)
        metrics.add_metric(name="CompletionTokens", unit=MetricUnit.Count, value=usage.completion_tokens)
        metrics.add_metric(name="EmbeddingInputs", unit=MetricUnit.Count, value=usage.embedding_inputs)
        metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds, value=usage.duration_ns / 1e6)
        if usage.status >= 400:
            metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        if usage.status >= 500:  # the service's own failures, apart from clients' bad requests
            metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        for name in ("owner", "key_id", "model", "method", "status", "request_id"):
            metrics.add_metadata(key=name, value=getattr(usage, name))
        metrics.flush_metrics()
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        log.exception("could not emit EMF metrics")
