"""The functions inside the real Lambda runtime path, without Docker.

The Lambda Runtime Interface Emulator (the ``aws-lambda-rie`` binary that aws-sam-cli ships under
``samcli/local/rapid/``) listens on 127.0.0.1 and runs a bootstrap that starts the
``awslambdaric`` runtime client on ``functions/<name>/app.handler``, in its own process, with
``AWS_ENDPOINT_URL`` pointing at moto's server: the same fake AWS the in-process tier uses. Each
SAM-generated event is POSTed to ``/2015-03-31/functions/function/invocations`` and the answer
compared with the in-process handler's.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lambda_support import (
    HTTP_KINDS,
    ROOT,
    FakeAws,
    LambdaContext,
    decode,
    free_port,
    http_event,
    load_event,
    load_function,
    sqs_event,
)

from skyllama.services.jobs import runner as jobs

pytestmark = pytest.mark.model

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def find_rie() -> str | None:
    """``$SKYLLAMA_LAMBDA_RIE``, ``aws-lambda-rie`` on PATH, or the binary inside an aws-sam-cli install."""
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    candidates = [os.environ.get("SKYLLAMA_LAMBDA_RIE"), shutil.which("aws-lambda-rie")]
    patterns = ["/tmp/samenv/lib/python3*/site-packages/samcli/local/rapid",
                str(Path.home() / ".local/lib/python3*/site-packages/samcli/local/rapid"),
                str(Path(sys.prefix) / "lib/python3*/site-packages/samcli/local/rapid")]
    for pattern in patterns:
        candidates += [f"{folder}/aws-lambda-rie-{arch}" for folder in glob.glob(pattern)]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def rie() -> str:
    found = find_rie()
    if found is None:
        pytest.skip("the Lambda Runtime Interface Emulator was not found (infra/ci/install-sam.sh installs "
                    "aws-sam-cli, which ships it; or set SKYLLAMA_LAMBDA_RIE)")
    return found


@contextlib.contextmanager
def running(rie: str, name: str, env: dict[str, str], tmp: Path) -> Iterator[Invoke]:
    """``functions/<name>`` under the RIE on 127.0.0.1; yields a function that invokes it."""
    task_root = ROOT / "functions" / name
    bootstrap = tmp / f"bootstrap-{name}"
    bootstrap.write_text(f'#!/bin/sh\ncd "{task_root}"\nexec "{sys.executable}" -m awslambdaric "$@"\n')
    bootstrap.chmod(0o755)
    port, api_port = free_port(), free_port()
    proc_env = {**os.environ, **env, "LAMBDA_TASK_ROOT": str(task_root), "AWS_LAMBDA_FUNCTION_NAME": f"skyllama-{name}",
                "AWS_LAMBDA_FUNCTION_TIMEOUT": "120", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
                "PYTHONPATH": f"{task_root}{os.pathsep}{ROOT / 'layers' / 'core'}"}
    log = open(tmp / f"rie-{name}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([rie, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                             "--runtime-api-address", f"127.0.0.1:{api_port}", "--log-level", "error",
                             str(bootstrap), "app.handler"], env=proc_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
    client = httpx.Client(timeout=120)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        resp = client.post(url, content=json.dumps(event))
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        assert "errorType" not in result, (result, (tmp / f"rie-{name}.log").read_text()[-3000:])
        return result

    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                client.get(f"http://127.0.0.1:{port}/")
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / f"rie-{name}.log").read_text()
            time.sleep(0.1)
        yield invoke
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def env(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("rie-tmp") / "blobs")}


def _same(rie_result: dict[str, Any], local_result: dict[str, Any]) -> None:
    a, b = decode(rie_result), decode(local_result)
    assert (a.status, a.headers.get("content-type"), a.base64) == (b.status, b.headers.get("content-type"), b.base64)
    assert a.json() == b.json()


def test_api_function_under_the_rie(rie: str, env: dict[str, str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    local = load_function("api", env)
    with running(rie, "api", env, tmp_path) as invoke:
        for kind in HTTP_KINDS:
            for method, path, body in (("GET", "/api/tags", None), ("POST", "/api/show", {"model": "smollm2:135m"}),
                                       ("GET", "/api/version", None), ("POST", "/api/show", {"model": "nope:1b"})):
                event = http_event(kind, method, path, body=body)
                _same(invoke(event), local.handler(event, LambdaContext()))
        name = f"rie-{uuid.uuid4().hex[:8]}:latest"
        created = decode(invoke(http_event("rest-api-v1", "POST", "/api/create",
                                           body={"model": name, "from": "smollm2:135m", "system": "RIE."})))
        assert created.status == 200 and not created.base64 and created.ndjson()[-1] == {"status": "success"}
    tags = decode(local.handler(http_event("alb", "GET", "/api/tags"), LambdaContext())).json()
    assert name in [m["name"] for m in tags["models"]]  # made in the RIE process, seen in this one


def test_worker_function_under_the_rie(rie: str, env: dict[str, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    local = load_function("worker", env)
    name = f"rie-job-{uuid.uuid4().hex[:8]}:latest"
    job_id = jobs.new_job(local.jobs.state, "create", {"model": name, "from": "smollm2:135m", "system": "Job."},
                          None, now=time.time())
    with running(rie, "worker", env, tmp_path) as invoke:
        assert invoke(sqs_event({"id": job_id, "type": "create"})) == {"batchItemFailures": []}
        assert invoke(sqs_event({"id": job_id, "type": "create"})) == {"batchItemFailures": []}  # duplicate
    record = jobs.get_job(local.jobs.state, job_id)
    assert record["status"] == "success" and record["attempts"] == 1
    assert local.jobs.creator.catalog.get(name, None).system == "Job."


def test_warmer_function_under_the_rie(rie: str, env: dict[str, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    local = load_function("warmer", env)
    record = {"model": "smollm2:135m", "digest": "0" * 64, "size": 1, "size_vram": 0, "context_length": 2048,
              "keep_alive": 300, "model_expires_at": time.time() + 300}
    local.state.put("instance", "i-rie#0", record, expires_at=time.time() + 300)
    # an older or foreign record without the fields readers use is skipped, never a crash
    local.state.put("instance", "i-rie#old", {"model": "old:latest"}, expires_at=time.time() + 300)
    try:
        event = load_event("eventbridge-schedule")
        with running(rie, "warmer", env, tmp_path) as invoke:
            remote, here = invoke(event), local.handler(event, LambdaContext())
        # the table is shared with the other Lambda tests, whose instances may hold models too
        assert remote["models"] == here["models"] and "smollm2:135m" in remote["models"]
        assert "old:latest" not in remote["models"]
        assert remote["provisioned"] == here["provisioned"] == 0
        assert any(r.startswith("smollm2:135m: keep_alive not expired") for r in remote["reasons"])
    finally:
        local.state.delete("instance", "i-rie#0")
        local.state.delete("instance", "i-rie#old")


def test_inference_handler_under_the_rie(rie: str, env: dict[str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The image function's handler, run the same way (the image's runtime is this same client)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    local = load_function("inference", env)  # shares the cache the RIE process fills from S3
    chat = {"model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}], "stream": False,
            "options": {"temperature": 0, "seed": 1, "num_predict": 6}}
    event = http_event("http-api-v2", "POST", "/api/chat", body=chat)
    with running(rie, "inference", env, tmp_path) as invoke:
        remote = decode(invoke(event)).json()
    here = decode(local.handler(event, LambdaContext())).json()
    assert remote["message"] == here["message"] and remote["eval_count"] == here["eval_count"]
    assert any(Path(env["SKYLLAMA_CACHE_DIR"]).glob("sha256-*"))
