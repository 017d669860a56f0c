"""T-23 idempotency keys, on ``services/jobs/runner.py``'s ``idempotent_runner`` (Powertools Idempotency
on the state table, DynamoDB under moto). The key is the job id and the message's step (a pull
or push that ran out of time continues under a new step): replaying a delivery returns the
first result without running again; the same id with a different payload still returns the first
result (the request lives in the job record, not the message, so a payload cannot change a job);
a delivery while the first still runs is refused as in progress; and once the first run's Lambda
deadline passes, a redelivery takes the job over."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from faults import TABLE, aws_stores, moto_aws

from skyllama.services.jobs import runner as jobs


class Context:
    """The parts of a Lambda context Powertools reads."""

    def __init__(self, remaining_ms: int) -> None:
        self.deadline = time.time() * 1000 + remaining_ms
        self.function_name, self.memory_limit_in_mb = "worker", 1024
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:worker"
        self.aws_request_id = "req"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline - time.time() * 1000))


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with moto_aws(monkeypatch):
        _s3, _b, _m, state = aws_stores(tmp_path / "cache")
        runs: list[str] = []
        gate = threading.Event()
        gate.set()

        def fake_run_job(_jobs: Any, job_id: str, **_k: Any) -> dict[str, Any]:
            runs.append(job_id)
            gate.wait(10)
            return {"id": job_id, "status": "success", "run": len(runs)}

        monkeypatch.setattr(jobs, "run_job", fake_run_job)
        run, config = jobs.idempotent_runner(None, table=TABLE, dynamodb=state.client)
        config.register_lambda_context(Context(remaining_ms=60_000))
        yield run, config, runs, gate


def test_replay_returns_the_first_result_without_running_again(runner: Any) -> None:
    run, _config, runs, _gate = runner
    first = run(job={"id": "job-1", "type": "create"})
    again = run(job={"id": "job-1", "type": "create"})
    assert first == again == {"id": "job-1", "status": "success", "run": 1} and runs == ["job-1"]


def test_same_key_different_payload_cannot_change_the_job(runner: Any) -> None:
    run, _config, runs, _gate = runner
    first = run(job={"id": "job-2", "type": "create"})
    other = run(job={"id": "job-2", "type": "push", "request": {"model": "evil"}})
    assert other == first and runs == ["job-2"]
    assert run(job={"id": "job-3", "type": "create"})["run"] == 2  # another key runs


def test_a_continuation_under_a_new_step_runs_and_its_replay_does_not(runner: Any) -> None:
    run, _config, runs, _gate = runner
    run(job={"id": "job-5", "type": "pull", "step": "a"})
    assert run(job={"id": "job-5", "type": "pull", "step": "b"})["run"] == 2
    assert run(job={"id": "job-5", "type": "pull", "step": "b"})["run"] == 2 and runs == ["job-5", "job-5"]


def test_concurrent_delivery_is_refused_while_in_progress(runner: Any) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    run, _config, runs, gate = runner
    gate.clear()
    first = threading.Thread(target=lambda: run(job={"id": "job-4", "type": "create"}))
    first.start()
    while not runs:
        time.sleep(0.01)
    with pytest.raises(IdempotencyAlreadyInProgressError):
        run(job={"id": "job-4", "type": "create"})
    gate.set()
    first.join(10)
    assert runs == ["job-4"]


def test_timed_out_run_is_taken_over_after_the_lambda_deadline(runner: Any) -> None:
    run, config, runs, gate = runner
    gate.clear()
    config.register_lambda_context(Context(remaining_ms=300))
    stuck = threading.Thread(target=lambda: run(job={"id": "job-5", "type": "create"}), daemon=True)
    stuck.start()  # a Lambda that will be killed at its deadline
    while not runs:
        time.sleep(0.01)
    time.sleep(0.5)
    config.register_lambda_context(Context(remaining_ms=60_000))
    taken = threading.Thread(target=lambda: run(job={"id": "job-5", "type": "create"}))
    taken.start()
    deadline = time.time() + 5
    while len(runs) < 2 and time.time() < deadline:
        time.sleep(0.01)
    gate.set()
    taken.join(10)
    stuck.join(10)
    assert runs == ["job-5", "job-5"]
