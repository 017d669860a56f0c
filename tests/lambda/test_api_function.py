"""The api function (control plane through Mangum), invoked in-process with SAM-generated events
of every HTTP source: API Gateway REST (v1), HTTP API (v2), Function URL and ALB."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import pytest
from lambda_support import HTTP_KINDS, FakeAws, invoke_http, load_function

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def api(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("api-tmp"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_function("api", env)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_read_routes_answer_for_every_event_source(api: Any, kind: str) -> None:
    root = invoke_http(api, kind, "GET", "/")
    assert root.status == 200 and root.body == b"Ollama is running"
    version = invoke_http(api, kind, "GET", "/api/version")
    assert version.status == 200 and "version" in version.json()
    tags = invoke_http(api, kind, "GET", "/api/tags")
    assert tags.status == 200, tags.body
    assert "smollm2:135m" in [m["name"] for m in tags.json()["models"]]
    show = invoke_http(api, kind, "POST", "/api/show", body={"model": "smollm2:135m"})
    assert show.status == 200 and "completion" in show.json()["capabilities"]
    missing = invoke_http(api, kind, "POST", "/api/show", body={"model": "nope:1b"})
    assert missing.status == 404 and "not found" in missing.json()["error"]
    ps = invoke_http(api, kind, "GET", "/api/ps")
    assert ps.status == 200 and "models" in ps.json()


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_blob_upload_lands_in_s3_under_its_key(api: Any, seeded_aws: FakeAws, kind: str) -> None:
    data = os.urandom(64 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert invoke_http(api, kind, "HEAD", f"/api/blobs/{digest}").status == 404
    up = invoke_http(api, kind, "POST", f"/api/blobs/{digest}", body=data,
                     headers={"content-type": "application/octet-stream"})
    assert up.status == 201, up.body
    head = seeded_aws.client("s3").head_object(Bucket=seeded_aws.bucket, Key=f"blobs/sha256-{digest[7:]}")
    assert head["ContentLength"] == len(data)
    assert invoke_http(api, kind, "HEAD", f"/api/blobs/{digest}").status == 200
    bad = "sha256:" + "0" * 64
    wrong = invoke_http(api, kind, "POST", f"/api/blobs/{bad}", body=data,
                        headers={"content-type": "application/octet-stream"})
    assert wrong.status == 400 and "digest mismatch" in wrong.json()["error"]


def test_create_streams_ndjson_as_text_and_a_second_environment_sees_the_model(
        api: Any, seeded_aws: FakeAws, tmp_path: Any) -> None:
    name = f"lambda-{uuid.uuid4().hex[:8]}:latest"
    created = invoke_http(api, "rest-api-v1", "POST", "/api/create",
                          body={"model": name, "from": "smollm2:135m", "system": "You are terse."})
    assert created.status == 200
    assert created.headers["content-type"].startswith("application/x-ndjson")
    assert not created.base64  # NDJSON is a text type for Mangum: never base64
    assert created.ndjson()[-1] == {"status": "success"}

    other = load_function("api", {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path)})  # a second Lambda
    for kind in HTTP_KINDS:
        names = [m["name"] for m in invoke_http(other, kind, "GET", "/api/tags").json()["models"]]
        assert name in names
    show = invoke_http(other, "http-api-v2", "POST", "/api/show", body={"model": name}).json()
    assert show["system"] == "You are terse."

    copied = f"lambda-copy-{uuid.uuid4().hex[:8]}:latest"
    assert invoke_http(other, "alb", "POST", "/api/copy", body={"source": name, "destination": copied}).status == 200
    assert invoke_http(api, "function-url", "POST", "/api/show", body={"model": copied}).status == 200
    for model in (name, copied):
        assert invoke_http(api, "function-url", "DELETE", "/api/delete", body={"model": model}).status == 200
    names = [m["name"] for m in invoke_http(other, "rest-api-v1", "GET", "/api/tags").json()["models"]]
    assert name not in names and copied not in names
