"""Control plane: the skyllama app through Mangum (tags, show, copy, delete, blobs, create, ps, version).

Built once per execution environment, at import; Mangum's lifespan is off because it would run
the ASGI lifespan on every invocation. NDJSON is a text type, so streamed bodies are never base64.

No Powertools Tracer (as in the inference function): the X-Ray SDK would bring its own botocore
into this zip and cost cold start; the function's active tracing still records its segments.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_runtime
from skyllama.http.app import create_app

CORRELATION_ID = 'requestContext.requestId || headers."x-amzn-trace-id"'
logger, metrics = Logger(), Metrics(namespace="skyllama")
app = create_app(build_runtime(lambda_settings(), inference=False))  # inference has its own function
asgi = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/x-ndjson"])


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID)
@metrics.log_metrics(capture_cold_start_metric=True)  # ColdStart, dimension function_name
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway (REST v1, HTTP API v2), Function URL or ALB event in, HTTP response out."""
    metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
    response: dict[str, Any] = asgi(event, context)
    return response
