"""keep_alive warmer (EventBridge schedule, every minute): the warm policy applied to the fleet.

Each round reads the live instance records (``skyllama.services.fleet``), adds the models pinned by
``SKYLLAMA_PRELOAD``, asks ``skyllama.services.warm_policy.plan`` what to do, and does it:

- warm-up invocations of the inference function, concurrent so they reach distinct execution
  environments, each naming the models to hold (with their fleet ``expires_at``): an instance that
  lost a model loads it again, and its refreshed record keeps the model's expiry;
- provisioned concurrency on ``SKYLLAMA_INFERENCE_ALIAS`` and the GPU service's desired count
  (``SKYLLAMA_GPU_CLUSTER``/``SKYLLAMA_GPU_SERVICE``) set to the plan's targets.

Every decision is logged with its reason.
"""

import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from skyllama.adapters.aws.capacity import EcsDesiredCount, LambdaProvisioned, apply
from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_services
from skyllama.durations import parse_duration
from skyllama.services import warm_policy
from skyllama.services.fleet import INSTANCE_KIND, live_records
from skyllama.settings import Settings, parse_model_map

logger, metrics = Logger(), Metrics(namespace="skyllama")
services = build_services(lambda_settings())
WARM_UP_WAIT_S = 50  # the warmer's own timeout is 60 s; an unanswered warm-up still loads its model


def pinned_models(preload: str, default_keep_alive: float) -> dict[str, float]:
    """``SKYLLAMA_PRELOAD``'s models (pinned by setting) with keep_alive, except those with keep_alive 0."""
    pinned = {}
    for name, keep_alive in parse_model_map(preload).items():
        try:
            seconds = parse_duration(keep_alive) if keep_alive else default_keep_alive
        except ValueError:
            logger.warning("ignoring a preload entry with a bad keep_alive", extra={"model": name})
            continue
        if seconds != 0:
            pinned[name] = seconds
    return pinned


def _wire(seconds: float) -> float:
    return -1 if math.isinf(seconds) else seconds


def warm_up_events(plan: warm_policy.WarmPlan, live: dict[str, tuple[float, float]]) -> list[tuple[str, dict[str, Any]]]:
    """``(target function, event)`` per warm instance: slot i names the models warmed on i+1 instances.

    ``live``: model -> (fleet expires_at, keep_alive asked), both inf for forever.
    """
    events = []
    for target in sorted(set(plan.targets.values())):
        models = {m: n for m, n in plan.warm.items() if plan.targets.get(m, "") == target}
        for slot in range(max(models.values(), default=0)):
            names = sorted(m for m, n in models.items() if n > slot)
            entries = [{"name": m, "expires_at": _wire(live[m][0]), "keep_alive": _wire(live[m][1])} for m in names]
            events.append((target, {"source": "skyllama.warmer", "models": entries}))
    return events


def capacities(settings: Settings) -> list[LambdaProvisioned | EcsDesiredCount]:
    found: list[LambdaProvisioned | EcsDesiredCount] = []
    endpoint = settings.aws_endpoint_url or None
    if settings.inference_function and settings.inference_alias:
        found.append(LambdaProvisioned(boto3.client("lambda", endpoint_url=endpoint),
                                       settings.inference_function, settings.inference_alias))
    if settings.gpu_cluster and settings.gpu_service:
        found.append(EcsDesiredCount(boto3.client("ecs", endpoint_url=endpoint),
                                     settings.gpu_cluster, settings.gpu_service))
    return found


def invoke_all(settings: Settings, events: list[tuple[str, dict[str, Any]]]) -> int:
    """Send the warm-ups at once (concurrent, so they land on distinct instances); how many were answered."""
    if not events:
        return 0
    client = boto3.client("lambda", endpoint_url=settings.aws_endpoint_url or None,
                          config=Config(read_timeout=WARM_UP_WAIT_S, retries={"max_attempts": 1}))

    def invoke(target: str, event: dict[str, Any]) -> bool:
        function = target or settings.inference_function
        kwargs: dict[str, Any] = {"FunctionName": function, "Payload": json.dumps(event).encode()}
        if function == settings.inference_function and settings.inference_alias:
            kwargs["Qualifier"] = settings.inference_alias
        try:
            client.invoke(InvocationType="RequestResponse", **kwargs)
            return True
        except Exception as e:  # noqa: BLE001 - a slow or failed warm-up is logged, the round goes on
            logger.warning("warm-up not answered", extra={"function": function, "error": type(e).__name__})
            return False

    with ThreadPoolExecutor(max_workers=min(len(events), 16)) as pool:
        return sum(pool.map(lambda pair: invoke(*pair), events))


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An EventBridge scheduled event in; the plan and what was done out."""
    settings, now = services.settings, services.clock.now()
    records = live_records(services.state.query(INSTANCE_KIND), now)  # malformed ones skipped
    models = warm_policy.live_models(records, now)
    limits = warm_policy.WarmLimits(settings.warm_provision_after, settings.warm_max_per_model,
                                    settings.warm_max_total)
    pinned = pinned_models(settings.preload, settings.keep_alive)
    plan = warm_policy.plan(models, pinned, limits, now)
    live = {name: (now + seconds, seconds) for name, seconds in pinned.items()}
    live |= {m.name: (m.expires_at, m.keep_alive) for m in models}
    events = warm_up_events(plan, live)
    answered = invoke_all(settings, events) if settings.inference_function else 0
    actions = [apply(c, c_target) for c in capacities(settings)
               for c_target in [plan.provisioned if isinstance(c, LambdaProvisioned) else plan.desired_count]]
    for reason in plan.reasons + actions:
        logger.info(reason)
    metrics.add_metric(name="LiveModels", unit=MetricUnit.Count, value=len(plan.warm))
    metrics.add_metric(name="WarmUps", unit=MetricUnit.Count, value=len(events))
    return {"models": sorted(plan.warm), "warm_ups": len(events), "answered": answered,
            "provisioned": plan.provisioned, "desired_count": plan.desired_count, "actions": actions,
            "reasons": plan.reasons}
