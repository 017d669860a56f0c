"""Streaming from Lambda: ``functions/inference/stream.py`` (the custom runtime) in its own process
against a Runtime API on 127.0.0.1 (``fake_runtime_api``), with the real demo model fetched from
moto's S3. Streamed NDJSON must reach the Runtime API line by line while the model generates.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_runtime_api import FakeRuntimeApi, Outcome
from lambda_support import ROOT, FakeAws, http_event

from skyllama.adapters.aws.lambda_stream import serve, stream_invocation
from skyllama.adapters.aws.runtime_api import PRELUDE_DELIMITER, PRELUDE_TYPE, RuntimeApi

pytestmark = pytest.mark.model

TASK_ROOT = ROOT / "functions" / "inference"
GREEDY = {"temperature": 0, "seed": 1}


@contextlib.contextmanager
def runtime_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc_env = {
        **os.environ,
        **env,
        "LAMBDA_TASK_ROOT": str(TASK_ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "skyllama-stream",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "PYTHONPATH": f"{TASK_ROOT}{os.pathsep}{ROOT / 'layers' / 'core'}",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(TASK_ROOT / "stream.py")],
            cwd=TASK_ROOT,
            env=proc_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def runtime(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeRuntimeApi]:
    tmp = tmp_path_factory.mktemp("stream-runtime")
    with FakeRuntimeApi() as api:
        env = {
            **seeded_aws.env,
            "SKYLLAMA_CACHE_DIR": str(tmp / "blobs"),
            "AWS_LAMBDA_RUNTIME_API": api.address,
        }
        with runtime_process(env, tmp / "runtime.log") as proc:
            warm = api.invoke(
                http_event(
                    "function-url",
                    "POST",
                    "/api/generate",
                    body={
                        "model": "smollm2:135m",
                        "prompt": "Hi",
                        "stream": False,
                        "options": {**GREEDY, "num_predict": 1},
                    },
                )
            )
            if not warm.done.wait(180):
                pytest.fail(f"runtime never answered:\n{(tmp / 'runtime.log').read_text()[-3000:]}")
            assert proc.poll() is None
            yield api


def split(outcome: Outcome) -> tuple[dict[str, Any], bytes, list[tuple[float, bytes]]]:
    """The prelude, the HTTP body, and the body's chunks with their arrival times."""
    assert outcome.kind == "response", (outcome.kind, outcome.body[:500])
    prelude, delimiter, body = outcome.body.partition(PRELUDE_DELIMITER)
    assert delimiter, outcome.body[:200]
    chunks, offset = [], len(prelude) + len(delimiter)
    for at, data in outcome.chunks:
        tail = data[max(0, offset) :]
        offset -= len(data)
        if tail:
            chunks.append((at, tail))
    return json.loads(prelude), body, chunks


def arrival_of(chunks: list[tuple[float, bytes]], needle: bytes) -> float:
    """When the chunk that completes the first line containing ``needle`` arrived."""
    seen = b""
    for at, data in chunks:
        seen += data
        start = seen.find(needle)
        if start >= 0 and b"\n" in seen[start:]:
            return at
    raise AssertionError(f"{needle!r} not in the body")


def test_generate_streams_line_by_line_while_generating(runtime: FakeRuntimeApi) -> None:
    request = {
        "model": "smollm2:135m",
        "prompt": "Write a story about a cat.",
        "options": {**GREEDY, "num_predict": 48},
    }
    outcome = runtime.invoke(http_event("function-url", "POST", "/api/generate", body=request)).wait()
    headers = outcome.headers
    assert headers["lambda-runtime-function-response-mode"] == "streaming"
    assert headers["transfer-encoding"] == "chunked" and headers["content-type"] == PRELUDE_TYPE
    assert "lambda-runtime-function-error-type" in headers["trailer"].lower()
    prelude, body, chunks = split(outcome)
    assert prelude["statusCode"] == 200 and prelude["headers"]["content-type"].startswith(
        "application/x-ndjson"
    )
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) > 10 and lines[-1]["done"] is True and not outcome.trailers
    assert len(chunks) > 10  # one chunk per line, not one buffered body
    first, last = arrival_of(chunks, b'"done":false'), arrival_of(chunks, b'"done":true')
    generation_s = lines[-1]["eval_duration"] / 1e9
    # Buffered, every line would arrive at once; streamed, the first arrives while the rest are generated.
    assert last - first > 0.5 * generation_s > 0, (last - first, generation_s)
    buffered = runtime.invoke(
        http_event("function-url", "POST", "/api/generate", body={**request, "stream": False})
    ).wait()
    _, buffered_body, _ = split(buffered)
    assert json.loads(buffered_body)["response"] == "".join(line["response"] for line in lines)


def test_chat_streams(runtime: FakeRuntimeApi) -> None:
    outcome = runtime.invoke(
        http_event(
            "function-url",
            "POST",
            "/api/chat",
            body={
                "model": "smollm2:135m",
                "messages": [{"role": "user", "content": "Name three colours."}],
                "options": {**GREEDY, "num_predict": 24},
            },
        )
    ).wait()
    prelude, body, chunks = split(outcome)
    lines = [json.loads(line) for line in body.splitlines()]
    assert prelude["statusCode"] == 200 and lines[-1]["done"] is True
    assert all(line["message"]["role"] == "assistant" for line in lines) and len(chunks) > 5
    streamed_s = arrival_of(chunks, b'"done":true') - arrival_of(chunks, b'"done":false')
    assert streamed_s > 0.5 * lines[-1]["eval_duration"] / 1e9 > 0


def test_deadline_mid_stream_ends_with_an_error_line_and_trailers(runtime: FakeRuntimeApi) -> None:
    """Lambda stops the function at its deadline without a word; the runtime ends the body first."""
    # A raw count: greedy decoding goes on counting (1500 tokens, ~17 s here), so the generation
    # outlasts the deadline ("the " * 64 reached an end of text after 188 tokens, inside 3 s once
    # decoding got faster).
    request = {
        "model": "smollm2:135m",
        "prompt": ", ".join(str(i) for i in range(1, 40)) + ",",
        "raw": True,
        "options": {**GREEDY, "num_predict": -1},
    }
    outcome = runtime.invoke(
        http_event("function-url", "POST", "/api/generate", body=request), timeout_s=3
    ).wait()
    prelude, body, _ = split(outcome)
    lines = [json.loads(line) for line in body.splitlines()]
    assert prelude["statusCode"] == 200 and len(lines) > 1 and "response" in lines[0]
    assert set(lines[-1]) == {"error"} and "time limit" in lines[-1]["error"], (len(lines), lines[-1])
    assert outcome.trailers["lambda-runtime-function-error-type"] == "Function.DeadlineExceeded"
    error = json.loads(base64.b64decode(outcome.trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "Function.DeadlineExceeded" and error["errorMessage"]
    # The runtime goes on, and the model is free for the next request.
    after = runtime.invoke(
        http_event(
            "function-url",
            "POST",
            "/api/generate",
            body={
                "model": "smollm2:135m",
                "prompt": "Hi",
                "stream": False,
                "options": {**GREEDY, "num_predict": 2},
            },
        )
    ).wait(60)
    assert split(after)[0]["statusCode"] == 200


def test_a_client_that_goes_away_stops_the_generation(runtime: FakeRuntimeApi) -> None:
    """The connection drops mid-stream: the app sees a disconnect and frees the model at once."""
    request = {
        "model": "smollm2:135m",
        "prompt": ", ".join(str(i) for i in range(1, 40)) + ",",  # greedy counting goes on (see above)
        "raw": True,
        "options": {**GREEDY, "num_predict": -1},
    }
    gone = runtime.invoke(http_event("function-url", "POST", "/api/generate", body=request), drop_after=2000)
    assert gone.wait(60).kind == "dropped"
    # Left running, the generation would hold the model until the two-minute deadline.
    after = runtime.invoke(
        http_event(
            "function-url",
            "POST",
            "/api/generate",
            body={
                "model": "smollm2:135m",
                "prompt": "Hi",
                "stream": False,
                "options": {**GREEDY, "num_predict": 2},
            },
        )
    )
    assert split(after.wait(30))[0]["statusCode"] == 200


def test_bad_request_is_a_4xx_json_error(runtime: FakeRuntimeApi) -> None:
    outcome = runtime.invoke(
        # a prompt that is not a string (no model is Ollama's 404 "model '' not found" since e4b38f3)
        http_event("function-url", "POST", "/api/generate", body={"model": "nope:1b", "prompt": 5})
    ).wait()
    prelude, body, _ = split(outcome)
    assert prelude["statusCode"] == 400 and prelude["headers"]["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]
    missing = runtime.invoke(
        http_event(
            "function-url",
            "POST",
            "/api/chat",
            body={"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]},
        )
    ).wait()
    prelude, body, _ = split(missing)
    assert prelude["statusCode"] == 404 and "not found" in json.loads(body)["error"]


def test_other_events_are_answered_buffered(runtime: FakeRuntimeApi) -> None:
    warm = runtime.invoke({"source": "skyllama.warmer", "models": ["smollm2:135m"]}).wait()
    assert warm.kind == "response" and "lambda-runtime-function-response-mode" not in warm.headers
    assert json.loads(warm.body) == {"warm": True, "models": {"smollm2:135m": "warm"}}  # loaded on the same loop
    rest = runtime.invoke(
        http_event("rest-api-v1", "POST", "/api/show", body={"model": "smollm2:135m"})
    ).wait()
    assert rest.kind == "response" and json.loads(rest.body)["statusCode"] == 200  # Mangum's buffered shape
    junk = runtime.invoke({"unexpected": "event"}).wait()
    assert junk.kind == "error" and json.loads(junk.body)["errorType"]


def test_init_failure_is_reported_to_init_error(seeded_aws: FakeAws, tmp_path: Path) -> None:
    env = {**seeded_aws.env, "SKYLLAMA_BUCKET": "", "AWS_LAMBDA_RUNTIME_API": ""}
    with FakeRuntimeApi() as api:
        env["AWS_LAMBDA_RUNTIME_API"] = api.address
        with runtime_process(env, tmp_path / "init.log") as proc:
            assert proc.wait(60) == 1
        assert len(api.init_errors) == 1
        headers, body = api.init_errors[0]
        assert headers["lambda-runtime-function-error-type"] == body["errorType"] == "Runtime.InitError"
        assert "SKYLLAMA_BUCKET" in body["errorMessage"]


def test_an_app_exception_after_the_first_line_ends_the_stream_with_an_error_line() -> None:
    """The defence for a failure the app does not turn into a line itself (an ASGI app that raises)."""

    async def failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson"), (b"set-cookie", b"a=b")],
            }
        )
        await send(
            {"type": "http.response.body", "body": b'{"response":"x","done":false}\n', "more_body": True}
        )
        raise RuntimeError("engine fell over")

    with FakeRuntimeApi() as fake:
        outcome = fake.invoke(http_event("function-url", "POST", "/api/generate", body={"model": "m"}))
        invocation = RuntimeApi(fake.address).next()
        asyncio.run(stream_invocation(failing_app, RuntimeApi(fake.address), invocation))
        prelude, body, _ = split(outcome.wait(10))
    assert prelude == {
        "statusCode": 200,
        "headers": {"content-type": "application/x-ndjson"},
        "cookies": ["a=b"],
    }
    assert [json.loads(line) for line in body.splitlines()] == [
        {"response": "x", "done": False},
        {"error": "internal server error"},
    ]
    assert outcome.trailers["lambda-runtime-function-error-type"] == "Function.RuntimeError"
    assert json.loads(base64.b64decode(outcome.trailers["lambda-runtime-function-error-body"]))[
        "errorMessage"
    ] == ("engine fell over")


def test_a_refused_response_fails_that_invocation_only() -> None:
    """The Runtime API refuses a result (413): the runtime goes on, keeping its loaded model."""

    async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    with FakeRuntimeApi() as fake:
        refused = fake.invoke(http_event("function-url", "GET", "/"), refuse=413)
        refused_buffered = fake.invoke({"source": "skyllama.warmer"}, refuse=413)
        served = fake.invoke(http_event("function-url", "GET", "/"))
        serve(tiny_app, lambda event, context: {"warm": True}, RuntimeApi(fake.address), invocations=3)
        assert refused.wait(10).kind == refused_buffered.wait(10).kind == "response"
        assert split(served.wait(10))[1] == b"ok"
