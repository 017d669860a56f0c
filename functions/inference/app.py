"""Inference: generate, chat, embed, embeddings (and OpenAI /v1) through Mangum.

Models load lazily on the first request that needs them: the blob is fetched from S3 into
``SKYLLAMA_CACHE_DIR`` (``/tmp``) by parallel ranged GETs, verified by digest, and kept with the
loaded model for the warm invocations that follow. A warm-up event from the warmer holds the models
it names (loading them if needed) until their fleet ``expires_at``; each invocation first unloads
what expired while the instance was frozen. Loaded models are recorded in DynamoDB
(``skyllama.services.fleet``) for fleet ``/api/ps`` and the warmer.

No Powertools Tracer here: creating one imports and configures the X-Ray SDK (~0.4 s of every cold
start, before the first token); the function's active tracing still records its segments.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from skyllama.adapters.aws.factory import lambda_settings
from skyllama.http.app import create_app
from skyllama.http.warm_up import event_loop, reap, warm_up

CORRELATION_ID = 'requestContext.requestId || headers."x-amzn-trace-id"'
logger, metrics = Logger(), Metrics(namespace="skyllama")
app = create_app(lambda_settings())
asgi = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/x-ndjson"])


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An HTTP event (API Gateway, Function URL, ALB), or the warmer's ``{"source": "skyllama.warmer"}``."""
    loop = event_loop()
    if event.get("source") == "skyllama.warmer":
        metrics.add_metric(name="WarmUps", unit=MetricUnit.Count, value=1)
        return {"warm": True, "models": loop.run_until_complete(warm_up(app, event.get("models")))}
    metrics.add_metric(name="InferenceRequests", unit=MetricUnit.Count, value=1)
    loop.run_until_complete(reap(app))  # models whose keep_alive ran out while this instance was frozen
    response: dict[str, Any] = asgi(event, context)
    return response
