"""Blobs larger than Lambda's 6 MB payload: asked with ``?presign=1``, the api function answers 202
with presigned S3 multipart URLs (SigV4, the region in their credential scope), the client PUTs
the parts straight to S3 (moto's server, real HTTP), and ``POST /api/blobs/<digest>/complete``
verifies the sha256 before committing. A wrong digest is never committed and leaves nothing
behind. A plain POST that only declares a large body gets 413 and opens no upload."""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lambda_support import HTTP_KINDS, FakeAws, invoke_http, load_function

SIZE = 13 * (1 << 20)  # over 6 MB, and two 8 MiB parts


@pytest.fixture(scope="module")
def api(fake_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**fake_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("presign-tmp"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_function("api", env)


def _put_parts(upload: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    parts = []
    with httpx.Client(timeout=60) as client:
        for part in upload["parts"]:
            start = (part["part_number"] - 1) * upload["part_size"]
            resp = client.put(part["url"], content=data[start:start + part["size"]])
            resp.raise_for_status()
            parts.append({"part_number": part["part_number"], "etag": resp.headers["etag"]})
    return parts


def _leftovers(fake_aws: FakeAws) -> list[str]:
    s3 = fake_aws.client("s3")
    temp = s3.list_objects_v2(Bucket=fake_aws.bucket, Prefix="uploads/").get("Contents", [])
    return [o["Key"] for o in temp] + [u["Key"] for u in s3.list_multipart_uploads(Bucket=fake_aws.bucket).get("Uploads", [])]


def assert_sigv4(url: str, region: str = "us-east-1") -> None:
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], url
    assert query["X-Amz-Credential"][0].split("/")[2:] == [region, "s3", "aws4_request"], url
    assert "Signature" not in query and "AWSAccessKeyId" not in query, url  # no SigV2 form


@pytest.mark.parametrize("how", ["query", "content-length"])
def test_big_blob_goes_by_presigned_multipart_upload(api: Any, fake_aws: FakeAws, how: str) -> None:
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if how == "query":
        answer = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}", query={"presign": "1", "size": str(SIZE)})
    else:  # the size may come as the declared length, with ?presign=1 (the body is never read)
        answer = invoke_http(api, "http-api-v2", "POST", f"/api/blobs/{digest}", query={"presign": "1"},
                             headers={"content-length": str(SIZE)})
    assert answer.status == 202, answer.body
    upload = answer.json()["upload"]
    for part in upload["parts"]:
        assert_sigv4(part["url"])
    assert upload["complete"] == f"/api/blobs/{digest}/complete" and len(upload["parts"]) == 2
    assert invoke_http(api, "rest-api-v1", "HEAD", f"/api/blobs/{digest}").status == 404
    parts = _put_parts(upload, data)
    body: dict[str, Any] = {"upload": upload["upload"], "upload_id": upload["upload_id"]}
    if how == "query":
        body["parts"] = parts  # optional: the server lists them otherwise
    done = invoke_http(api, "function-url", "POST", upload["complete"], body=body)
    assert done.status == 201, done.body
    head = fake_aws.client("s3").head_object(Bucket=fake_aws.bucket, Key=f"blobs/sha256-{digest[7:]}")
    assert head["ContentLength"] == SIZE
    assert invoke_http(api, "alb", "HEAD", f"/api/blobs/{digest}").status == 200
    assert _leftovers(fake_aws) == []


def test_a_declared_big_body_without_presign_is_413_and_opens_no_upload(api: Any, fake_aws: FakeAws) -> None:
    digest = "sha256:" + "5" * 64
    for kind in HTTP_KINDS:
        answer = invoke_http(api, kind, "POST", f"/api/blobs/{digest}", headers={"content-length": str(SIZE)})
        assert answer.status == 413, (kind, answer.body)
        assert "skyllama create" in answer.json()["error"] and "/api/pull" in answer.json()["error"]
    assert _leftovers(fake_aws) == []


def test_resume_lists_the_stored_parts_and_signs_the_rest(api: Any, fake_aws: FakeAws) -> None:
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    first = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}", query={"presign": "1", "size": str(SIZE)})
    upload = first.json()["upload"]
    one = dict(upload, parts=upload["parts"][:1])
    _put_parts(one, data)
    again = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}",
                        query={"presign": "1", "size": str(SIZE), "upload": upload["upload"],
                               "upload_id": upload["upload_id"]})
    assert again.status == 202, again.body
    resumed = again.json()["upload"]
    assert [p["part_number"] for p in resumed["done"]] == [1]
    assert [p["part_number"] for p in resumed["parts"]] == [2]
    for part in resumed["parts"]:
        assert_sigv4(part["url"])
    parts = resumed["done"] + _put_parts(resumed, data)
    done = invoke_http(api, "rest-api-v1", "POST", upload["complete"],
                       body={"upload": upload["upload"], "upload_id": upload["upload_id"], "parts": parts})
    assert done.status == 201, done.body
    assert _leftovers(fake_aws) == []
    gone = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}",
                       query={"presign": "1", "size": str(SIZE), "upload": upload["upload"],
                              "upload_id": upload["upload_id"]})
    assert gone.status == 200  # committed meanwhile: nothing to resume


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3"])
def test_presigned_urls_are_sigv4_on_the_regional_endpoint(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a deployed stack hands out (no endpoint override): no request leaves this machine."""
    from botocore.stub import Stubber

    from skyllama.adapters.aws.factory import aws_clients
    from skyllama.adapters.aws.s3_blobs import S3BlobStore
    from skyllama.digests import Digest
    from skyllama.settings import Settings

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": region, "AWS_REGION": region}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = aws_clients(Settings.from_env({"SKYLLAMA_BACKEND": "aws"}))["s3"]
    store = S3BlobStore("models-bucket", client=s3)
    with Stubber(s3) as stub:
        stub.add_response("list_multipart_uploads", {"Uploads": []})  # the sweep of abandoned ones
        stub.add_response("create_multipart_upload", {"UploadId": "u-1"})
        plan = store.presign_upload(Digest("1" * 64), SIZE, ttl=3600)
        stub.add_response("list_parts", {"Parts": []})
        resumed = store.resume_presigned(Digest("1" * 64), SIZE, plan["upload"], plan["upload_id"])
    for part in plan["parts"] + resumed["parts"]:
        assert_sigv4(part["url"], region)
        assert urlsplit(part["url"]).netloc == f"models-bucket.s3.{region}.amazonaws.com"
        assert urlsplit(part["url"]).scheme == "https"


def test_wrong_digest_is_never_committed(api: Any, fake_aws: FakeAws) -> None:
    data = os.urandom(SIZE)
    claimed = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    answer = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{claimed}", query={"presign": "1", "size": str(SIZE)})
    upload = answer.json()["upload"]
    _put_parts(upload, data)
    done = invoke_http(api, "rest-api-v1", "POST", upload["complete"],
                       body={"upload": upload["upload"], "upload_id": upload["upload_id"]})
    assert done.status == 400 and "digest mismatch" in done.json()["error"]
    assert invoke_http(api, "rest-api-v1", "HEAD", f"/api/blobs/{claimed}").status == 404
    assert _leftovers(fake_aws) == []


def test_small_upload_still_goes_through_the_api(api: Any, fake_aws: FakeAws) -> None:
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    up = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}", body=data,
                     headers={"content-type": "application/octet-stream"})
    assert up.status == 201


def test_complete_rejects_bad_requests(api: Any) -> None:
    digest = "sha256:" + "1" * 64
    assert invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}/complete", body={"upload": 1}).status == 400
    gone = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}/complete",
                       body={"upload": "0" * 32, "upload_id": "nope"})
    assert gone.status in (400, 404)
    presign = invoke_http(api, "rest-api-v1", "POST", f"/api/blobs/{digest}", query={"presign": "1"})
    assert presign.status == 400 and "size" in presign.json()["error"]
