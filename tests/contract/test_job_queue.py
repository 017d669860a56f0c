"""JobQueue contract: the in-process queue and SQS (moto) behave the same."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from skyllama.errors import BadRequest


def receive_all(jobs: Any, expected: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(20):
        got += jobs.receive(10)
        if len(got) >= expected:
            break
    return got


def test_send_then_receive_round_trips_json(jobs: Any) -> None:
    sent = [
        {"type": "pull", "name": "smollm2:135m", "id": "job-1"},
        {"type": "create", "params": {"nested": [1, 2.5, None, True]}, "id": "job-2", "text": "ünï ✓"},
    ]
    for job in sent:
        jobs.send(job)
    got = receive_all(jobs, len(sent))
    assert sorted(got, key=lambda j: j["id"]) == sent
    assert jobs.receive(10) == []  # received jobs are gone


def test_many_jobs_from_many_threads(jobs: Any) -> None:
    threads = [
        threading.Thread(target=lambda i=i: [jobs.send({"id": f"{i}-{n}"}) for n in range(5)]) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = receive_all(jobs, 20)
    assert sorted(j["id"] for j in got) == sorted(f"{i}-{n}" for i in range(4) for n in range(5))


@pytest.mark.parametrize(
    "job",
    [{"when": object()}, {"x": float("nan")}, ["not", "an", "object"], {"blob": "x" * (256 * 1024)}],
    ids=["not-json", "nan", "not-an-object", "too-large"],
)
def test_bad_jobs_are_refused_and_nothing_is_sent(jobs: Any, job: Any) -> None:
    with pytest.raises(BadRequest):
        jobs.send(job)
    assert jobs.receive(10) == []


def test_local_queue_runs_jobs_with_a_handler() -> None:
    from skyllama.adapters.local.jobs import LocalJobQueue

    done: list[dict[str, Any]] = []

    def handler(job: dict[str, Any]) -> None:
        if job["n"] == 1:
            raise RuntimeError("one job fails")
        done.append(job)

    queue = LocalJobQueue(handler)
    for n in range(3):
        queue.send({"n": n})
    queue.join()
    queue.close()
    assert done == [{"n": 0}, {"n": 2}]


def test_sqs_event_records_decode(aws: None) -> None:
    from skyllama.adapters.aws.sqs_jobs import jobs_from_event

    event = {"Records": [{"messageId": "m1", "body": '{"type":"pull"}', "eventSource": "aws:sqs"}]}
    assert jobs_from_event(event) == [("m1", {"type": "pull"})]
