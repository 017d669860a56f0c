"""Prometheus metrics (``GET /metrics``) and the same generation figures as CloudWatch EMF.

One :class:`Metrics` per app, on its own ``CollectorRegistry`` (never the process-global one, so
several apps in one process, as in tests, do not collide). Figures and where they come from:

- ``skyllama_requests_total{route,model,status}``, ``skyllama_prompt_tokens_total{model}``,
  ``skyllama_completion_tokens_total{model}``: from the metering middleware's usage record
  (:meth:`Metrics.observe_usage`), i.e. what the client actually received;
- ``skyllama_time_to_first_token_seconds{model}`` (load + prompt evaluation),
  ``skyllama_time_per_output_token_seconds{model}`` (mean decode time of one request) and
  ``skyllama_load_duration_seconds{model}`` (Ollama's ``load_duration``: waiting for and loading
  the model): from each generation's end (:meth:`Metrics.observe`, called by the inference service);
- ``skyllama_loaded_models``, ``skyllama_requests_running{model}``,
  ``skyllama_requests_queued{model}`` and ``skyllama_queue_depth``: read from the scheduler at
  scrape time.

With EMF on (``SKYLLAMA_EMF_METRICS``), each generation's figures are also printed as one Powertools EMF
document (namespace ``skyllama``), beside the request/token document ``services/metering.py``
already emits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)



class _SchedulerCollector(Collector):
    """Gauges read from the scheduler when scraped."""

    def __init__(self, scheduler: Any | None) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sched = self.scheduler
        rows = sched.ps() if sched is not None else []
        loaded = GaugeMetricFamily("skyllama_loaded_models", "Models loaded now.")
        loaded.add_metric([], len(rows))
        running = GaugeMetricFamily("skyllama_requests_running", "Requests generating now.", labels=["model"])
        queued = GaugeMetricFamily("skyllama_requests_queued", "Requests waiting for a slot.", labels=["model"])
        for row in rows:
            running.add_metric([row["name"]], row.get("running", 0))
            queued.add_metric([row["name"]], row.get("queued", 0))
        depth = GaugeMetricFamily("skyllama_queue_depth", "Requests waiting (for a slot or for room).")
        depth.add_metric([], getattr(sched, "_waiting", 0) if sched is not None else 0)
        yield from (loaded, running, queued, depth)


class Metrics:
    """The app's Prometheus registry and the observations that feed it."""

    def __init__(self, scheduler: Any | None = None, *, emf: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.emf = emf
        if emf:  # imported now, at start, never inside a request (and never where EMF is off)
            import aws_lambda_powertools.metrics  # noqa: F401
        reg = self.registry
        self.requests = Counter("skyllama_requests", "Requests by route, model and status.",
                                ["route", "model", "status"], registry=reg)
        self.prompt_tokens = Counter("skyllama_prompt_tokens", "Prompt tokens evaluated.", ["model"], registry=reg)
        self.completion_tokens = Counter("skyllama_completion_tokens", "Tokens generated.", ["model"],
                                         registry=reg)
        self.ttft = Histogram("skyllama_time_to_first_token_seconds", "Load plus prompt evaluation time.",
                              ["model"], buckets=LATENCY_BUCKETS, registry=reg)
        self.tpot = Histogram("skyllama_time_per_output_token_seconds", "Mean decode time per token.",
                              ["model"], buckets=TOKEN_BUCKETS, registry=reg)
        self.load = Histogram("skyllama_load_duration_seconds", "Time waiting for and loading the model.",
                              ["model"], buckets=LATENCY_BUCKETS, registry=reg)
        reg.register(_SchedulerCollector(scheduler))

    def observe_usage(self, usage: Any) -> None:
        """One finished request (a ``services.metering.UsageRecord``)."""
        model = usage.model or "-"
        self.requests.labels(usage.route or "-", model, str(usage.status)).inc()
        if usage.prompt_tokens:
            self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self.completion_tokens.labels(model).inc(usage.completion_tokens)

    def observe(self, model: str, *, load_ns: int, prompt_eval_ns: int, eval_count: int, eval_ns: int) -> None:
        self.load.labels(model).observe(load_ns / 1e9)
        self.ttft.labels(model).observe((load_ns + prompt_eval_ns) / 1e9)
        if eval_count:
            self.tpot.labels(model).observe(eval_ns / eval_count / 1e9)
        if self.emf:
            emit_generation_emf(model, load_ns, prompt_eval_ns, eval_count, eval_ns)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def emit_generation_emf(model: str, load_ns: int, prompt_eval_ns: int, eval_count: int, eval_ns: int) -> None:
    """One CloudWatch EMF document with the generation's latencies and decode rate (dimension sets
    ``[model, service]`` and ``[service]``)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    try:
        metrics = EphemeralMetrics(namespace="skyllama", service="skyllama")
        metrics.add_dimension(name="model", value=model or "-")
        metrics.add_dimensions(service="skyllama")  # also fleet-wide: the p99 TTFT alarm reads that set
        metrics.add_metric(name="TimeToFirstToken", unit=MetricUnit.Milliseconds,
                           value=(load_ns + prompt_eval_ns) / 1e6)
        metrics.add_metric(name="LoadDuration", unit=MetricUnit.Milliseconds, value=load_ns / 1e6)
        if eval_count:
            metrics.add_metric(name="TimePerOutputToken", unit=MetricUnit.Milliseconds,
                               value=eval_ns / eval_count / 1e6)
        if eval_count and eval_ns:
            # its own metric, not 1000/TPOT: a percentile of a ratio is not the ratio of a percentile
            metrics.add_metric(name="TokensPerSecond", unit=MetricUnit.CountPerSecond,
                               value=eval_count / (eval_ns / 1e9))
        metrics.flush_metrics()
    except Exception:  # noqa: BLE001
        log.exception("could not emit EMF metrics")
