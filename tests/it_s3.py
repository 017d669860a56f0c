"""The real-S3 tier: an S3 engine at ``IT_S3_ENDPOINT`` (LocalStack's S3 in CI, started by
``.ci/run`` through ``infra/ci/localstack.sh``; MinIO or real S3 by hand), next to moto.

moto verifies no checksums and no signatures; LocalStack does both, so the contract suites and
T-26 also run there. Without an endpoint those tests skip with the reason ``.ci/run`` recorded
in ``IT_S3_UNAVAILABLE`` (for instance: no Python 3.13 to install LocalStack on).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

KIND = "it-s3"  # the fixture parameter and harness kind of the endpoint variant
_CLIENT: list[Any] = []
_LOCALSTACK: list[bool] = []

# Measured on localstack-core 2026.3.0: a ranged GET racing a PUT of the same key returns the new
# object's bytes cut to the old object's length (87 of 230 reads; Content-Range names the old
# size, so no client can tell). Plain GETs never do; real S3 serves a range from one version.
LOCALSTACK_RANGE_RACE = "LocalStack serves a ranged GET racing a PUT from two versions (cut to the old size)"


def endpoint() -> str | None:
    return os.environ.get("IT_S3_ENDPOINT") or None


def skip_reason() -> str:
    why = os.environ.get("IT_S3_UNAVAILABLE") or "IT_S3_ENDPOINT is unset (.ci/run starts LocalStack's S3)"
    return f"no real S3 engine: {why}"


def require() -> str:
    url = endpoint()
    if url is None:
        pytest.skip(skip_reason())
    return url


def new_client(**config: Any) -> Any:
    """A boto3 client for the endpoint (credentials from IT_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY;
    LocalStack takes any), configured as skyllama configures one for a custom endpoint (SigV4,
    path-style); ``config`` adds botocore ``Config`` options."""
    import boto3
    from botocore.config import Config

    from skyllama.adapters.aws.factory import S3_ENDPOINT_CONFIG

    return boto3.client(
        "s3",
        endpoint_url=require(),
        region_name=os.environ.get("IT_S3_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("IT_S3_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("IT_S3_SECRET_ACCESS_KEY", "test"),
        config=S3_ENDPOINT_CONFIG.merge(Config(retries={"max_attempts": 2}, **config)),
    )


def client() -> Any:
    """The endpoint's client shared by the session (a client costs ~0.2 s to make)."""
    require()
    if not _CLIENT:
        _CLIENT.append(new_client())
    return _CLIENT[0]


def is_localstack() -> bool:
    """Whether the endpoint is LocalStack (it answers ``/_localstack/health``)."""
    if not _LOCALSTACK:
        import urllib.request

        try:
            with urllib.request.urlopen(require() + "/_localstack/health", timeout=5) as r:
                _LOCALSTACK.append(r.status == 200)
        except OSError:
            _LOCALSTACK.append(False)
    return _LOCALSTACK[0]


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object and open multipart upload, so each test starts from an empty bucket."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for u in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def fresh_bucket(bucket: str, *, prefix: str = "") -> Any:
    """The endpoint's client, with ``bucket`` created as skyllama creates one (once) and empty."""
    from botocore.exceptions import ClientError

    from skyllama.adapters.aws.tables import create_bucket

    s3 = client()
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        create_bucket(s3, bucket, prefix=prefix)
    empty_bucket(s3, bucket)
    return s3


def is_endpoint_client(s3: Any) -> bool:
    return bool(_CLIENT) and s3 is _CLIENT[0]


def put_many(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    """PutObject in parallel: 1,005 in a row took ~14 s on LocalStack (busy 2 cores), 16 threads ~7 s."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))
