"""The worker function: SQS create jobs, idempotent on the job id (Powertools, in the state table)
and resumable: a job cut off midway completes when its message is redelivered, with no
duplicate and no dangling manifest. Progress is followed by the API's ``wait_for_job`` stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from lambda_support import FakeAws, LambdaContext, load_function, sqs_event

from skyllama.names import ModelName
from skyllama.services.jobs import runner as jobs

pytestmark = pytest.mark.model


class SimulatedTimeout(BaseException):
    """What a Lambda timeout looks like from inside: the process stops, nothing is cleaned up."""


@pytest.fixture(scope="module")
def worker(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("worker-tmp"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_function("worker", env)


def _submit(worker: Any, system: str) -> tuple[str, str]:
    name = f"job-{uuid.uuid4().hex[:8]}:latest"
    queue = _Recorder()
    job_id = jobs.submit_create(worker.jobs, {"model": name, "from": "smollm2:135m", "system": system}, queue, None)
    assert queue.sent == [{"id": job_id, "type": "create"}]
    return name, job_id


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, job: dict[str, Any]) -> None:
        self.sent.append(job)


def _manifests_named(worker: Any, name: str) -> list[Any]:
    wanted = ModelName.parse(name).key
    return [m for m in worker.jobs.transfers.manifests.list() if m.name.key == wanted]


def test_create_job_runs_and_the_stream_follows_it(worker: Any) -> None:
    name, job_id = _submit(worker, "From a job.")
    result = worker.handler(sqs_event({"id": job_id, "type": "create"}), LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": []}
    assert jobs.get_job(worker.jobs.state, job_id)["status"] == "success"
    assert worker.jobs.creator.catalog.get(name, None).system == "From a job."

    async def follow() -> list[dict[str, Any]]:
        return [e async for e in jobs.wait_for_job(worker.jobs.state, job_id, poll=0.05, timeout=10)]

    events = asyncio.run(follow())
    assert events[-1] == {"status": "success"} and {"status": "writing manifest"} in events


def test_interrupted_job_completes_on_redelivery_without_duplicates(worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    name, job_id = _submit(worker, "Resumed.")
    message = sqs_event({"id": job_id, "type": "create"})
    real_add = jobs.Progress.add

    def cut_off(self: jobs.Progress, event: dict[str, Any]) -> None:
        real_add(self, event)
        if event == {"status": "writing manifest"}:
            raise SimulatedTimeout

    monkeypatch.setattr(jobs.Progress, "add", cut_off)
    with pytest.raises(SimulatedTimeout):  # the deadline is 5 ms away: Powertools' lock expires with it
        worker.handler(message, LambdaContext("skyllama-worker", remaining_ms=5))
    monkeypatch.setattr(jobs.Progress, "add", real_add)
    record = jobs.get_job(worker.jobs.state, job_id)
    assert record["status"] == "running" and record["attempts"] == 1
    assert _manifests_named(worker, name) == []  # never a dangling manifest
    time.sleep(0.05)

    redelivered = {"Records": [{**message["Records"][0], "attributes": {
        **message["Records"][0]["attributes"], "ApproximateReceiveCount": "2"}}]}
    assert worker.handler(redelivered, LambdaContext("skyllama-worker")) == {"batchItemFailures": []}
    record = jobs.get_job(worker.jobs.state, job_id)
    assert record["status"] == "success" and record["attempts"] == 2
    assert {"status": "resuming (attempt 2)"} in record["events"]
    assert len(_manifests_named(worker, name)) == 1

    # A duplicate delivery of a finished job: Powertools answers from its record, nothing reruns.
    assert worker.handler(redelivered, LambdaContext("skyllama-worker")) == {"batchItemFailures": []}
    assert jobs.get_job(worker.jobs.state, job_id)["attempts"] == 2
    assert len(_manifests_named(worker, name)) == 1


def test_a_job_that_cannot_succeed_ends_in_error_without_retry(worker: Any) -> None:
    job_id = jobs.new_job(worker.jobs.state, "create", {"model": "bad-job", "from": "missing-model:1b"},
                          None, now=time.time())
    result = worker.handler(sqs_event({"id": job_id, "type": "create"}), LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": []}
    record = jobs.get_job(worker.jobs.state, job_id)
    assert record["status"] == "error" and "not found" in record["error"]

    async def follow() -> None:
        async for _event in jobs.wait_for_job(worker.jobs.state, job_id, poll=0.05, timeout=5):
            pass

    with pytest.raises(jobs.JobFailed):
        asyncio.run(follow())


def test_a_message_without_a_job_id_is_a_batch_item_failure(worker: Any) -> None:
    event = sqs_event({"type": "create"})  # alone in its batch: reported, not a failed invocation
    result = worker.handler(event, LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
