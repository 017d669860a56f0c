"""Helpers and fixtures of the Lambda tests: moto in server mode on 127.0.0.1, the demo models in its S3,
the functions imported as Lambda imports them, and events made from the SAM-generated samples.

moto runs as a server (not the in-process mock) so that the in-process handlers, presigned PUTs
made with a real HTTP client and the function processes under the Runtime Interface Emulator
(``test_rie.py``) all see the same fake AWS account.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).parent / "events"
HTTP_KINDS = ["rest-api-v1", "http-api-v2", "function-url", "alb"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeAws:
    """moto's server, with the bucket, table and queue of one skyllama deployment."""

    endpoint: str
    bucket: str
    table: str
    queue_url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def fake_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAws]:
    from moto.server import ThreadedMotoServer

    from skyllama.adapters.aws.tables import bootstrap

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    try:
        res = bootstrap(bucket="skyllama-models", table="skyllama-state", queue="skyllama-jobs", endpoint_url=endpoint)
        env = {
            **creds, "AWS_ENDPOINT_URL": endpoint, "SKYLLAMA_BACKEND": "aws", "SKYLLAMA_BUCKET": res.bucket,
            "SKYLLAMA_TABLE": res.table, "SKYLLAMA_QUEUE_URL": res.queue_url, "SKYLLAMA_AUTH": "off",
            "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_SERVICE_NAME": "skyllama",
            "POWERTOOLS_METRICS_NAMESPACE": "skyllama", "POWERTOOLS_DEV": "0",
        }
        yield FakeAws(endpoint, res.bucket, res.table, res.queue_url, env)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def seeded_aws(fake_aws: FakeAws, demo_models: Path) -> FakeAws:
    """The demo models (blobs and manifests) copied from the local demo folder into moto's S3."""
    from skyllama.adapters.aws.s3_blobs import S3BlobStore
    from skyllama.adapters.aws.s3_manifests import S3ManifestStore
    from skyllama.adapters.local.blobs import LocalBlobStore
    from skyllama.adapters.local.manifests import LocalManifestStore

    s3 = fake_aws.client("s3")
    local_blobs, local_manifests = LocalBlobStore(demo_models), LocalManifestStore(demo_models)
    blobs, manifests = S3BlobStore(fake_aws.bucket, client=s3), S3ManifestStore(fake_aws.bucket, client=s3)
    for digest in local_blobs.list():
        if not blobs.exists(digest):
            blobs.put_file(local_blobs.local_path(digest), digest)
    for stored in local_manifests.list():
        manifests.put(stored.name, stored.data)
    return fake_aws


def load_function(name: str, env: dict[str, str], *, function_name: str | None = None) -> ModuleType:
    """Import ``functions/<name>/app.py`` as a fresh module (a new execution environment) under ``env``."""
    path = ROOT / "functions" / name / "app.py"
    module_name = f"lambda_{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setenv("AWS_LAMBDA_FUNCTION_NAME", function_name or f"skyllama-{name}")
        spec.loader.exec_module(module)
    return module


@pytest.fixture
def function_env(seeded_aws: FakeAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a function runs with (also set on this process while the test runs)."""
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path / "lambda-tmp" / "blobs")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class LambdaContext:
    """The parts of the Lambda context object that Powertools and Mangum read."""

    def __init__(self, name: str = "skyllama-test", remaining_ms: int = 60_000) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = uuid.uuid4().hex
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "test"
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def load_event(name: str) -> dict[str, Any]:
    """A SAM-generated sample event (``tests/lambda/events/<name>.json``)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def http_event(kind: str, method: str, path: str, *, body: bytes | str | dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The sample event of ``kind`` (one of :data:`HTTP_KINDS`) for one HTTP request."""
    event = copy.deepcopy(load_event(kind))
    hdrs = {"content-type": "application/json"} if isinstance(body, dict) else {}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    binary = isinstance(raw, bytes) and hdrs.get("content-type") == "application/octet-stream"
    text = None if raw is None else (base64.b64encode(raw).decode() if binary else
                                     raw.decode() if isinstance(raw, bytes) else raw)
    query = query or {}
    if kind in ("http-api-v2", "function-url"):
        event.update(rawPath=path, rawQueryString=urlencode(query), headers=hdrs, body=text, isBase64Encoded=binary)
        event["queryStringParameters"] = query or None
        event.pop("cookies", None)
        event["requestContext"]["http"].update(method=method, path=path)
        return event
    event.update(httpMethod=method, path=path, body=text, isBase64Encoded=binary)
    event["queryStringParameters"] = query or None
    if kind == "alb":
        event["headers"] = {"host": event["headers"]["host"], **hdrs}
        return event
    base = {"Host": event["headers"]["Host"], **hdrs}
    event["headers"] = base
    event["multiValueHeaders"] = {k: [v] for k, v in base.items()}
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    return event


def sqs_event(*bodies: dict[str, Any], receive_count: int = 1) -> dict[str, Any]:
    """The SAM sample SQS event with one record per body."""
    template = load_event("sqs")["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    base64: bool

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line]


def decode(response: dict[str, Any]) -> HttpResult:
    """A Lambda HTTP response (any of the four kinds) as status, lower-case headers and bytes."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for k, values in (response.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = ", ".join(values)
    body = response.get("body") or ""
    b64 = bool(response.get("isBase64Encoded"))
    return HttpResult(int(response["statusCode"]), headers, base64.b64decode(body) if b64 else body.encode(), b64)


def invoke_http(module: ModuleType, kind: str, method: str, path: str, **kwargs: Any) -> HttpResult:
    return decode(module.handler(http_event(kind, method, path, **kwargs), LambdaContext(module.__name__)))
