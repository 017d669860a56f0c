"""keep_alive warmer (EventBridge schedule), minimal for now: it lists the live model instance
records and, when ``SKYLLAMA_INFERENCE_FUNCTION`` is set, invokes the inference function once
(asynchronously) with a warm-up event naming them, together with the models pinned by
``SKYLLAMA_PRELOAD`` (what ``skyllama serve`` loads at start is what the cloud keeps warm).
The policy (how many instances, when) is a later issue's.
"""

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_services
from skyllama.durations import parse_duration
from skyllama.settings import parse_model_map

INSTANCE_KIND = "instance"
logger, metrics, tracer = Logger(), Metrics(namespace="skyllama"), Tracer()
services = build_services(lambda_settings())


def pinned_models(preload: str) -> set[str]:
    """``SKYLLAMA_PRELOAD``'s models (pinned by setting), except those listed with keep_alive 0."""
    pinned = set()
    for name, keep_alive in parse_model_map(preload).items():
        try:
            if not keep_alive or parse_duration(keep_alive) != 0:
                pinned.add(name)
        except ValueError:
            logger.warning("ignoring a preload entry with a bad keep_alive", extra={"model": name})
    return pinned


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An EventBridge scheduled event in; what was found and warmed out."""
    live = {str(item.get("model", key)) for key, item in services.state.query(INSTANCE_KIND)}
    models = sorted(live | pinned_models(services.settings.preload))
    target = services.settings.inference_function
    if models and target:
        client = boto3.client("lambda", endpoint_url=services.settings.aws_endpoint_url or None)
        payload = json.dumps({"source": "skyllama.warmer", "models": models})
        client.invoke(FunctionName=target, InvocationType="Event", Payload=payload.encode())
    metrics.add_metric(name="LiveModels", unit=MetricUnit.Count, value=len(models))
    return {"models": models, "invoked": bool(models and target)}
