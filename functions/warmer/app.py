"""keep_alive warmer (EventBridge schedule, every minute): the warm policy applied to the fleet.

Each round reads the live instance records (``skyllama.services.fleet``); ``warm_round`` in
``skyllama.services.warm_policy`` adds ``SKYLLAMA_PRELOAD``'s models and decides the warm-up
invocations and the capacity targets; ``WarmerControls`` (``skyllama.adapters.aws.capacity``)
sends and sets them. Every decision is logged with its reason.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from skyllama.adapters.aws.capacity import WarmerControls
from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_stores
from skyllama.ports import Clock
from skyllama.services.fleet.gpu_gate import demand_until
from skyllama.services.fleet.records import INSTANCE_KIND, live_records
from skyllama.services.fleet.warm_policy import warm_round

logger, metrics = Logger(), Metrics(namespace="skyllama")
settings, clock = lambda_settings(), Clock()
state = build_stores(settings, clock).state  # the fleet's instance records
controls = WarmerControls.from_settings(settings)


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics(capture_cold_start_metric=True)  # ColdStart, dimension function_name
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An EventBridge scheduled event in; the plan and what was done out."""
    now = clock.now()
    decided = warm_round(live_records(state.query(INSTANCE_KIND), now), settings, now,
                         gpu_demand=demand_until(state, now))  # a request the GPU gate turned away
    answered = controls.warm(decided.events)
    actions = controls.set_capacity(decided.plan.provisioned, decided.plan.desired_count)
    for skipped in decided.skipped:
        logger.warning(skipped)
    for reason in decided.plan.reasons + actions:
        logger.info(reason)
    metrics.add_metric(name="LiveModels", unit=MetricUnit.Count, value=len(decided.plan.warm))
    metrics.add_metric(name="WarmUps", unit=MetricUnit.Count, value=len(decided.events))
    # the capacity targets this round set (only those configured): the dashboard's warm-capacity graph
    if controls.provisioned is not None:
        metrics.add_metric(name="ProvisionedConcurrency", unit=MetricUnit.Count, value=decided.plan.provisioned)
    if controls.gpu_tasks is not None:
        metrics.add_metric(name="GpuDesiredCount", unit=MetricUnit.Count, value=decided.plan.desired_count)
    return decided.summary(answered, actions)
