"""SQS jobs (create: convert, quantize; pull; push): idempotent on the job message, resumable.

Each record is ``{"id", "type", "step"}``; the job's request and progress live in DynamoDB (see
``skyllama.services.jobs``). A pull or push stops ``job_reserve_seconds`` before the deadline and
queues its continuation. A failed record is reported back (ReportBatchItemFailures) so SQS
redelivers only it; after three receives it goes to the dead-letter queue. A poison message (a
body that is not a job, e.g. ``"Test message."``) is such a failed record too, even when it is
the whole batch: Powertools would raise ``BatchProcessingError`` for an all-failed batch, which
fails the invocation instead of reporting its items.

No Powertools Tracer (as in the inference function): the X-Ray SDK would bring its own botocore
into this zip and cost cold start; the function's active tracing still records its segments.
"""

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_jobs
from skyllama.services.jobs.runner import PoisonMessage, idempotent_runner, parse_message

logger, metrics = Logger(), Metrics(namespace="skyllama")
jobs = build_jobs(lambda_settings())
run, idempotency = idempotent_runner(jobs, table=jobs.settings.table, dynamodb=jobs.state.client,  # type: ignore[attr-defined]
                                     queue=jobs.queue)
# an all-failed batch (one poison message alone) is still a partial response, not an exception
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord, lambda_context: Any) -> dict[str, Any]:
    try:
        job = parse_message(record.body)
    except PoisonMessage as e:
        logger.error("poison message %s (receive %s): %s", record.message_id,
                     record.attributes.approximate_receive_count, e)
        metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)
        raise
    left = lambda_context.get_remaining_time_in_millis() / 1000 - jobs.settings.job_reserve_seconds
    result = run(job=job, deadline=time.monotonic() + left)
    metrics.add_metric(name=f"Jobs_{result['status']}", unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An SQS event in; ``{"batchItemFailures": [...]}`` out."""
    idempotency.register_lambda_context(context)
    metrics.add_metric(name="JobMessages", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
