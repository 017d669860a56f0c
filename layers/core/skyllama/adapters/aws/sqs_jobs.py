"""The job queue on SQS: each job is one JSON message (at-least-once, so jobs are idempotent).

In Lambda the worker receives jobs through the SQS event source mapping (:func:`jobs_from_event`);
:meth:`SqsJobQueue.receive` polls, for tests, scripts and long-running workers.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ...ports import JobQueue, encode_job
from ._common import VENDOR_ERRORS, LazyClient, store_error


def jobs_from_event(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(messageId, job)`` for each record of an SQS Lambda event."""
    return [(r["messageId"], json.loads(r["body"])) for r in event.get("Records", [])]


class SqsJobQueue(JobQueue):
    """Jobs as messages of one SQS queue; ``client`` is a boto3 SQS client."""

    def __init__(self, queue_url: str, *, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = LazyClient("sqs", client)
        self._fifo = queue_url.endswith(".fifo")

    @property
    def client(self) -> Any:
        return self._client.get()

    def send(self, job: dict[str, Any]) -> None:
        params: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": encode_job(job)}
        if self._fifo:
            params["MessageGroupId"] = str(job.get("group", "jobs"))
            params["MessageDeduplicationId"] = str(job.get("id") or uuid.uuid4().hex)[:128]
        try:
            self.client.send_message(**params)
        except VENDOR_ERRORS as e:
            raise store_error("SQS", "send", e) from e

    def receive(self, max_jobs: int = 10, wait_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Take up to ``max_jobs`` jobs off the queue (each deleted once received)."""
        try:
            resp = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(max_jobs, 10)),
                WaitTimeSeconds=int(wait_seconds),
            )
            jobs = []
            for msg in resp.get("Messages", []):
                jobs.append(json.loads(msg["Body"]))
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        except VENDOR_ERRORS as e:
            raise store_error("SQS", "receive", e) from e
        return jobs
