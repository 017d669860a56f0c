"""keep_alive warmer (EventBridge schedule), minimal for now: it lists the live model instance
records and, when ``SKYLLAMA_INFERENCE_FUNCTION`` is set, invokes the inference function once
(asynchronously) with a warm-up event naming them. The policy (how many instances, when) is a
later issue's.
"""

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_services

INSTANCE_KIND = "instance"
logger, metrics, tracer = Logger(), Metrics(namespace="skyllama"), Tracer()
services = build_services(lambda_settings())


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An EventBridge scheduled event in; what was found and warmed out."""
    models = sorted({str(item.get("model", key)) for key, item in services.state.query(INSTANCE_KIND)})
    target = services.settings.inference_function
    if models and target:
        client = boto3.client("lambda", endpoint_url=services.settings.aws_endpoint_url or None)
        payload = json.dumps({"source": "skyllama.warmer", "models": models})
        client.invoke(FunctionName=target, InvocationType="Event", Payload=payload.encode())
    metrics.add_metric(name="LiveModels", unit=MetricUnit.Count, value=len(models))
    return {"models": models, "invoked": bool(models and target)}
