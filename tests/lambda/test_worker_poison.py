"""The worker and a message that is not a job: the SAM sample SQS event (``"Hello from SQS!"``, what
``sam local generate-event sqs receive-message`` makes) and other bodies are reported in
``batchItemFailures`` (never a failed invocation), a good job in the same batch still runs, and
on a real queue (moto's SQS with the stack's redrive policy) the poison message reaches the
dead-letter queue after its three receives. A client that rejoins a job a worker is running is
told ``running``, not ``queued``."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import pytest
from lambda_support import FakeAws, LambdaContext, load_event, load_function

from skyllama.adapters.aws.tables import QUEUE_MAX_RECEIVE_COUNT, create_queue
from skyllama.services.jobs import runner as jobs

pytestmark = pytest.mark.model

POISON = ["Test message.", "", "{}", "[1, 2]", '{"id": 7, "type": "create"}', '{"id": "x"}', "\u00ff" * 300]


@pytest.fixture(scope="module")
def worker(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("poison-tmp"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_function("worker", env)


def records(*bodies: str) -> dict[str, Any]:
    template = load_event("sqs")["Records"][0]
    out = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"], record["body"] = str(uuid.uuid4()), body
        out.append(record)
    return {"Records": out}


def test_the_sam_sample_event_is_a_failed_item_not_a_failed_invocation(worker: Any) -> None:
    event = load_event("sqs")
    assert not event["Records"][0]["body"].startswith("{")  # the sample's plain-text body
    result = worker.handler(event, LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


@pytest.mark.parametrize("body", POISON)
def test_every_kind_of_poison_is_reported(worker: Any, body: str) -> None:
    event = records(body)
    result = worker.handler(event, LambdaContext("skyllama-worker"))
    assert result["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]


def test_a_poison_message_is_logged_and_counted(worker: Any, caplog: pytest.LogCaptureFixture,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    event = records("Test message.")
    capsys.readouterr()
    with caplog.at_level("ERROR"):
        worker.handler(event, LambdaContext("skyllama-worker"))
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1 and logged[0].startswith(f"poison message {event['Records'][0]['messageId']}")
    assert "not JSON" in logged[0] and "'Test message.'" in logged[0]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]  # metrics as EMF
    assert [line.get("PoisonMessages") for line in emf] in ([1.0], [[1.0]])


def test_a_good_job_in_the_same_batch_still_runs(worker: Any) -> None:
    name = f"poison-{uuid.uuid4().hex[:8]}:latest"
    job_id = jobs.submit_create(worker.jobs, {"model": name, "from": "smollm2:135m", "system": "ok"}, _Null(), None)
    event = records("Test message.", json.dumps({"id": job_id, "type": "create"}))
    result = worker.handler(event, LambdaContext("skyllama-worker"))
    assert result["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert jobs.get_job(worker.jobs.state, job_id)["status"] == "success"


def test_a_poison_message_reaches_the_dead_letter_queue_after_its_retries(worker: Any, seeded_aws: FakeAws) -> None:
    sqs = seeded_aws.client("sqs")
    url, dlq = create_queue(sqs, f"poison-{uuid.uuid4().hex[:8]}")
    sqs.send_message(QueueUrl=url, MessageBody="Test message.")
    receives = 0
    while True:  # what Lambda's event source mapping does: receive, invoke, delete only what succeeded
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            break
        receives += 1
        assert receives <= QUEUE_MAX_RECEIVE_COUNT
        event = records(*(m["Body"] for m in got))
        for record, message in zip(event["Records"], got, strict=True):
            record["messageId"] = message["MessageId"]
        failed = {f["itemIdentifier"] for f in worker.handler(event, LambdaContext("skyllama-worker"))["batchItemFailures"]}
        for message in got:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert receives == QUEUE_MAX_RECEIVE_COUNT
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["Test message."]


def test_rejoining_a_running_job_says_running(worker: Any) -> None:
    name = f"rejoin-{uuid.uuid4().hex[:8]}:latest"
    request = {"model": name, "from": "smollm2:135m", "system": "rejoined"}
    job_id = jobs.submit_or_attach(worker.jobs, "create", request, _Null(), None)

    async def first_line() -> dict[str, Any]:
        async for event in jobs.follow_job(worker.jobs.state, job_id, timeout=0.01):
            return event
        raise AssertionError("no line")

    assert asyncio.run(first_line())["status"] == f"job {job_id} queued"
    record = jobs.get_job(worker.jobs.state, job_id)
    worker.jobs.state.put(jobs.JOB_KIND, job_id, {**record, "status": "running"})  # a worker took it
    assert jobs.submit_or_attach(worker.jobs, "create", request, _Null(), None) == job_id
    assert asyncio.run(first_line())["status"] == f"job {job_id} running"


class _Null:
    def send(self, job: dict[str, Any]) -> None:
        pass
