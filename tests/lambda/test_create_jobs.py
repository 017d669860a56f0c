"""A slow create (quantize) on the AWS deployment runs in the worker: the api function queues it and
follows its progress; when the follow time runs out, sending the same request again follows the
same job (no second job, no duplicate manifest)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from lambda_support import FakeAws, LambdaContext, load_function, sqs_event

pytestmark = pytest.mark.model


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.fixture
def functions(seeded_aws: FakeAws, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path / "cache"), "SKYLLAMA_JOB_FOLLOW_SECONDS": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_function("api", env), load_function("worker", env)


def queued_messages(api: Any) -> list[dict[str, Any]]:
    sqs = api.app.state.runtime.stores.jobs
    return sqs.receive(max_jobs=10, wait_seconds=0)


async def post(api: Any, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example") as client:
        return await client.post("/api/create", json=body)


def test_quantize_runs_as_a_job_and_a_repeat_request_follows_it(functions: tuple[Any, Any]) -> None:
    import asyncio

    api, worker = functions
    body = {"model": "minilm-q8:latest", "from": "all-minilm", "quantize": "q8_0"}
    first = asyncio.run(post(api, body))
    events = lines(first)
    assert first.status_code == 200 and events[0]["status"].endswith("queued")
    job_id = events[0]["job"]
    assert "still running" in events[-1]["status"]  # nothing ran it yet: the follow time ran out
    messages = queued_messages(api)
    assert [m["id"] for m in messages] == [job_id]

    result = worker.handler(sqs_event({"id": job_id, "type": "create"}), LambdaContext("skyllama-worker"))
    assert result == {"batchItemFailures": []}

    again = lines(asyncio.run(post(api, body)))
    assert again[0]["job"] == job_id  # the same job, not a new one
    assert again[-1] == {"status": "success"}
    assert any(e["status"].startswith("quantizing") for e in again)
    assert queued_messages(api) == []  # the repeat queued nothing
    catalog = api.app.state.runtime.catalog
    shown = catalog.get("minilm-q8", None)
    assert catalog.gguf_info(shown.model_layer.digest).file_type == "Q8_0"


def test_fast_creates_stay_inline(functions: tuple[Any, Any]) -> None:
    import asyncio

    api, _worker = functions
    response = asyncio.run(post(api, {"model": "inline:latest", "from": "smollm2:135m", "system": "Hi."}))
    assert lines(response)[-1] == {"status": "success"}
    assert queued_messages(api) == []
