"""Inference: generate, chat, embed, embeddings (and OpenAI /v1) through Mangum.

A runner process is started before anything else is imported: it imports llama.cpp in parallel
with the function's own imports, and the first model load takes it (``engine/runner/pool.py``).
The runner is a child process of the function's, frozen and thawed with the execution
environment. Models load lazily on the first request that needs them: the blob is fetched from S3 into
``SKYLLAMA_CACHE_DIR`` (``/tmp``) by parallel ranged GETs, verified by digest, and kept with the
loaded model for the warm invocations that follow. A warm-up event from the warmer holds the models
it names (loading them if needed) until their fleet ``expires_at``; each invocation first unloads
what expired while the instance was frozen. Loaded models are recorded in DynamoDB
(``skyllama.services.fleet``) for fleet ``/api/ps`` and the warmer.

No Powertools Tracer here: creating one imports and configures the X-Ray SDK (~0.4 s of every cold
start, before the first token); the function's active tracing still records its segments.
"""

from typing import Any

from skyllama.engine.runner.pool import RunnerPool

runners = RunnerPool()  # first: its spare runner imports llama.cpp while the rest below imports

from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.metrics import MetricUnit  # noqa: E402
from mangum import Mangum  # noqa: E402
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES  # noqa: E402

from skyllama.adapters.aws.factory import lambda_settings  # noqa: E402
from skyllama.composition import build_runtime  # noqa: E402
from skyllama.http.app import create_app  # noqa: E402
from skyllama.services.fleet.warm_up import event_loop, reap, warm_up  # noqa: E402

CORRELATION_ID = 'requestContext.requestId || headers."x-amzn-trace-id"'
logger, metrics = Logger(), Metrics(namespace="skyllama")
runtime = build_runtime(lambda_settings(), runners=runners, control=False)  # create, pull, push: the API function
inference = runtime.inference
assert inference is not None
app = create_app(runtime)
asgi = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/x-ndjson"])


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID)
@metrics.log_metrics(capture_cold_start_metric=True)  # ColdStart, dimension function_name
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An HTTP event (API Gateway, Function URL, ALB), or the warmer's ``{"source": "skyllama.warmer"}``."""
    loop = event_loop()
    if event.get("source") == "skyllama.warmer":
        metrics.add_metric(name="WarmUpsReceived", unit=MetricUnit.Count, value=1)  # the warmer counts WarmUps sent
        models = warm_up(inference, event.get("models"), runtime.clock.now())
        return {"warm": True, "models": loop.run_until_complete(models)}
    metrics.add_metric(name="InferenceRequests", unit=MetricUnit.Count, value=1)
    loop.run_until_complete(reap(runtime.scheduler))  # models whose keep_alive ran out while this instance was frozen
    response: dict[str, Any] = asgi(event, context)
    return response
