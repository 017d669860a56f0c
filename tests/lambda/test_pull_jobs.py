"""Pull and push as worker jobs on the AWS deployment (moto S3, DynamoDB and SQS on 127.0.0.1, a
registry on 127.0.0.1): a pull streams its blob into an S3 multipart upload, is cut off by its
invocation's deadline mid-blob, queues its continuation, and the next invocation fetches only
what S3 does not hold yet; ``/api/pull`` on the api function follows the job, and is simply sent
again until ``success``. A corrupted upstream blob ends the job with an error and leaves nothing
under a blob name, no manifest and no temporary upload. A push runs as a job too."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lambda_support import FakeAws, LambdaContext, load_function, sqs_event

from fake_registry import FakeRegistry, digest_of, manifest_for, serve_registry
from serving import run_server
from skyllama.adapters.aws.s3_blobs import S3BlobStore
from skyllama.digests import Digest
from skyllama.names import ModelName
from skyllama.services.jobs import runner as jobs

MIB = 1 << 20
CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'
PART = 16 * MIB  # two download parts; S3 parts of 8 MiB (the blob store's part size)
STALL = 9 * MIB  # each ranged GET hangs here: one 8 MiB S3 part per range is in, 1 MiB is not


@pytest.fixture
def fns(fake_aws: FakeAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    env = {
        **fake_aws.env,
        "SKYLLAMA_CACHE_DIR": str(tmp_path / "cache"),
        "SKYLLAMA_REGISTRY_ALLOW_LOOPBACK": "true",
        "SKYLLAMA_PULL_PARTS": "2",
        "SKYLLAMA_PULL_MIN_PART_BYTES": str(5 * MIB),
        "SKYLLAMA_JOB_RESERVE_SECONDS": "0",
        "SKYLLAMA_JOB_FOLLOW_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = {
        "api": load_function("api", env),
        "worker": load_function("worker", env),
        "api_long": load_function("api", {**env, "SKYLLAMA_JOB_FOLLOW_SECONDS": "120"}),
    }
    taken(out)  # a clean queue
    return out


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        reg.chunk = 256 << 10
        yield reg


def taken(fns: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = fns["api"].app.state.runtime.stores.jobs.receive(max_jobs=10)
    return result


def call(api: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.example", timeout=180
        ) as client:
            return await client.post(path, json=body)

    response = asyncio.run(go())
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def work(fns: dict[str, Any], remaining_ms: int = 120_000) -> dict[str, Any]:
    """One worker invocation with the one queued message."""
    messages = taken(fns)
    assert len(messages) == 1, messages
    result = fns["worker"].handler(sqs_event(messages[0]), LambdaContext("skyllama-worker", remaining_ms))
    assert result == {"batchItemFailures": []}
    return messages[0]


def wait_queued(fns: dict[str, Any], job_id: str, status: str = "queued") -> None:
    state = fns["api"].app.state.runtime.state
    for _ in range(200):
        if jobs.get_job(state, job_id)["status"] == status:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"job {job_id} never became {status}")


def leftovers(fake_aws: FakeAws, digest: Digest) -> list[str]:
    s3 = fake_aws.client("s3")
    prefix = f"uploads/pull-{digest.hex}"
    objects = s3.list_objects_v2(Bucket=fake_aws.bucket, Prefix=prefix).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=fake_aws.bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in objects] + [u["Key"] for u in uploads]


def ollama_shaped(lines: list[dict[str, Any]], verb: str) -> None:
    for event in lines:
        status = event["status"]
        if status.startswith(f"{verb} ") and "digest" in event:
            assert status == f"{verb} {event['digest'][7:19]}" and set(event) == {
                "status",
                "digest",
                "total",
                "completed",
            }
            assert 0 <= event["completed"] <= event["total"]
        else:
            assert set(event) == {"status"} or "still running" in status, event


def test_pull_job_is_cut_off_mid_blob_continues_and_the_api_follows_it(
    fns: dict[str, Any], registry: FakeRegistry, fake_aws: FakeAws
) -> None:
    big = os.urandom(2 * PART)
    registry.publish(CONFIG, [big])
    digest = Digest(hashlib.sha256(big).hexdigest())
    model = registry.url.removeprefix("http://") + "/ns/big:v1"
    body = {"model": model, "insecure": True}
    svc = fns["worker"].jobs.transfers

    first = call(fns["api"], "/api/pull", body)  # nothing runs the job yet: the follow time runs out
    assert len(first) == 1 and "send the same request again" in first[0]["status"]
    job_id = first[0]["job"]

    registry.stall_after = STALL
    message = work(fns, remaining_ms=8_000)  # the deadline comes while both ranges hang
    record = jobs.get_job(svc.state, job_id)
    assert record["status"] == "queued" and record["step"] != message["step"]
    saved = svc.state.get("pull_multipart", f"{digest.hex}.{job_id}")
    assert [sum(size for _etag, size in part) for part in saved["parts"]] == [8 * MIB, 8 * MIB]
    assert svc.blobs.size(digest) is None and svc.manifests.get(ModelName.parse(model)) is None

    again = call(fns["api"], "/api/pull", body)  # the same request follows the same job
    ollama_shaped(again, "pulling")
    assert {"status": "pulling manifest"} in again and "still running" in again[-1]["status"]
    assert {"status": "success"} not in again
    assert again[-1]["job"] == job_id

    registry.stall_after, registry.served, registry.requests[:] = None, 0, []
    follower, lines = in_thread(call, fns["api_long"], "/api/pull", body)
    work(fns)  # the continuation
    follower.join(60)
    assert lines and lines[0][-1] == {"status": "success"}
    ollama_shaped(lines[0], "pulling")
    statuses = [e["status"] for e in lines[0]]
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert taken(fns) == []  # no second job

    ranges = [h["range"] for _m, path, h in registry.requests if path.endswith(str(digest)) and "range" in h]
    assert sorted(ranges) == sorted([f"bytes={8 * MIB}-{PART - 1}", f"bytes={PART + 8 * MIB}-{2 * PART - 1}"])
    assert registry.served == len(big) - 2 * 8 * MIB + len(CONFIG)  # the parts S3 held were not fetched again
    with svc.blobs.open(digest) as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest.hex
    assert svc.manifests.get(ModelName.parse(model)) is not None
    assert leftovers(fake_aws, digest) == []
    assert svc.state.get("pull_multipart", f"{digest.hex}.{job_id}") is None


def test_a_corrupted_blob_ends_the_job_with_an_error_and_commits_nothing(
    fns: dict[str, Any], registry: FakeRegistry, fake_aws: FakeAws
) -> None:
    layer = os.urandom(6 * MIB)
    registry.publish(CONFIG, [layer])
    registry.blobs[digest_of(layer)] = os.urandom(len(layer))  # same size, other bytes
    digest = Digest(hashlib.sha256(layer).hexdigest())
    model = registry.url.removeprefix("http://") + "/ns/bad:v1"

    follower, lines = in_thread(call, fns["api_long"], "/api/pull", {"model": model, "insecure": True})
    for _ in range(100):
        if queued := taken(fns):
            break
        threading.Event().wait(0.05)
    result = fns["worker"].handler(sqs_event(*queued), LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": []}  # a registry's bad bytes end the job: no redelivery
    follower.join(60)
    assert "digest mismatch" in lines[0][-1]["error"]
    svc = fns["worker"].jobs.transfers
    assert jobs.get_job(svc.state, queued[0]["id"])["status"] == "error"
    assert svc.blobs.size(digest) is None and svc.manifests.get(ModelName.parse(model)) is None
    assert leftovers(fake_aws, digest) == []
    assert isinstance(svc.blobs, S3BlobStore) and taken(fns) == []


def test_push_job_continues_after_running_out_of_time(fns: dict[str, Any], tmp_path: Path) -> None:
    svc = fns["worker"].jobs.transfers
    layer = os.urandom(2 * MIB)
    for data in (CONFIG, layer):
        svc.blobs.put_bytes(data)
    with run_server(tmp_path / "registry", registry_allow_loopback=True) as target:
        model = target.url.removeprefix("http://") + "/ns/pushed:v1"
        svc.manifests.put(ModelName.parse(model), manifest_for(CONFIG, [layer]))
        body = {"model": model, "insecure": True}
        first = call(fns["api"], "/api/push", body)
        assert "still running" in first[-1]["status"]
        work(fns, remaining_ms=0)  # out of time before the first line: continued at once
        assert jobs.get_job(svc.state, first[-1]["job"])["status"] == "queued"
        follower, lines = in_thread(call, fns["api_long"], "/api/push", body)
        work(fns)
        follower.join(60)
        statuses = [e["status"] for e in lines[0]]
        assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
        ollama_shaped(lines[0], "pushing")
        stored = target.runtime.manifests.get(ModelName.parse("registry.ollama.ai/ns/pushed:v1"))
        assert stored is not None and target.runtime.blobs.size(Digest(digest_of(layer)[7:])) == len(layer)


def test_a_stale_message_of_a_job_runs_nothing(fns: dict[str, Any]) -> None:
    svc = fns["worker"].jobs.transfers
    job_id = jobs.new_job(
        svc.state,
        "pull",
        {"model": "127.0.0.1:9/ns/gone:v1", "insecure": True},
        None,
        now=time.time(),
        step="current",
    )
    stale = sqs_event({"id": job_id, "type": "pull", "step": "superseded"})
    assert fns["worker"].handler(stale, LambdaContext("skyllama-worker")) == {"batchItemFailures": []}
    record = jobs.get_job(svc.state, job_id)
    assert record["status"] == "queued" and record["attempts"] == 0


def test_a_job_that_keeps_running_out_of_time_ends(fns: dict[str, Any]) -> None:
    svc = fns["worker"].jobs.transfers
    job_id = jobs.new_job(
        svc.state, "pull", {"model": "127.0.0.1:9/ns/slow:v1", "insecure": True}, None, now=time.time(), step="s"
    )
    record = jobs.get_job(svc.state, job_id)
    svc.state.put(jobs.JOB_KIND, job_id, {**record, "attempts": jobs.MAX_ATTEMPTS - 1})
    message = sqs_event({"id": job_id, "type": "pull", "step": "s"})
    assert fns["worker"].handler(message, LambdaContext("skyllama-worker", 0)) == {"batchItemFailures": []}
    record = jobs.get_job(svc.state, job_id)
    assert record["status"] == "error" and "did not finish" in record["error"] and taken(fns) == []
