"""What only the AWS adapters do: presigned uploads, read-back verification, error hygiene."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from contract_support import BUCKET, MIB, PREFIX, TABLE, client

import it_s3
from skyllama.adapters.aws._common import normalize_prefix
from skyllama.adapters.aws.dynamodb_state import DynamoDBStateStore
from skyllama.adapters.aws.s3_blobs import S3BlobStore
from skyllama.adapters.aws.s3_manifests import S3ManifestStore
from skyllama.adapters.aws.sqs_jobs import SqsJobQueue
from skyllama.adapters.aws.tables import bootstrap, create_bucket
from skyllama.digests import Digest
from skyllama.errors import BadRequest, DigestMismatch, StoreError
from skyllama.names import ModelName

DATA = os.urandom(11 * MIB + 3)
DAMAGED = DATA[:-1] + bytes([DATA[-1] ^ 1])  # (a fixed last byte would equal DATA's once in 256 runs)


def d(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest())


@pytest.fixture(params=["aws", it_s3.KIND])
def s3(request: pytest.FixtureRequest) -> Iterator[Any]:
    """moto, and the real-S3 tier (which checks the presigned URLs' SigV4 signatures)."""
    if request.param == "aws":
        request.getfixturevalue("aws")
        create_bucket(client("s3"), BUCKET, prefix=PREFIX)
        yield client("s3")
        return
    s3 = it_s3.fresh_bucket(BUCKET, prefix=PREFIX)
    yield s3
    it_s3.empty_bucket(s3, BUCKET)


@pytest.fixture
def store(s3: Any, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore(BUCKET, prefix=PREFIX, client=s3, cache_dir=tmp_path / "cache", part_size=5 * MIB)


def leftovers(s3: Any) -> list[str]:
    temp = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "uploads/").get("Contents", [])
    return [o["Key"] for o in temp] + [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def upload_parts(plan: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    parts = []
    for part in plan["parts"]:
        start = (part["part_number"] - 1) * plan["part_size"]
        resp = requests.put(part["url"], data=data[start : start + part["size"]], timeout=30)
        assert resp.status_code == 200, resp.text
        parts.append({"PartNumber": part["part_number"], "ETag": resp.headers["ETag"]})
    return parts


@pytest.mark.parametrize("send_parts", [True, False], ids=["client-etags", "listed-parts"])
def test_presigned_upload_is_verified_then_published(store: S3BlobStore, s3: Any, send_parts: bool) -> None:
    plan = store.presign_upload(d(DATA), len(DATA))
    assert [p["size"] for p in plan["parts"]] == [5 * MIB, 5 * MIB, MIB + 3]
    parts = upload_parts(plan, DATA)
    assert not store.exists(d(DATA))  # uploaded parts are not a blob yet
    got = store.complete_presigned(d(DATA), plan["upload"], plan["upload_id"], parts if send_parts else None)
    assert got == d(DATA)
    with store.open(d(DATA)) as f:
        assert f.read() == DATA
    assert leftovers(s3) == []


def test_presigned_upload_with_wrong_bytes_keeps_nothing(store: S3BlobStore, s3: Any) -> None:
    plan = store.presign_upload(d(DATA), len(DATA))
    upload_parts(plan, DAMAGED)
    with pytest.raises(DigestMismatch):
        store.complete_presigned(d(DATA), plan["upload"], plan["upload_id"])
    assert not store.exists(d(DATA))
    assert list(store.list()) == []
    assert leftovers(s3) == []


def test_presigned_upload_ids_are_checked(store: S3BlobStore, s3: Any) -> None:
    plan = store.presign_upload(d(DATA), len(DATA))
    for upload in ("../blobs/x", "", "A" * 32, plan["upload"] + "/.."):
        with pytest.raises(BadRequest):
            store.complete_presigned(d(DATA), upload, plan["upload_id"])
    store.abort_presigned(plan["upload"], plan["upload_id"])
    assert leftovers(s3) == []


def test_presigned_part_urls_work_only_as_signed(tmp_path: Path) -> None:
    """On the real-S3 tier (moto checks no signatures): a forged signature, or a URL moved to
    another part number, is refused with 403 and stores nothing."""
    s3 = it_s3.fresh_bucket(BUCKET, prefix=PREFIX)
    store = S3BlobStore(BUCKET, prefix=PREFIX, client=s3, cache_dir=tmp_path, part_size=5 * MIB)
    plan = store.presign_upload(d(DATA), len(DATA))
    url = plan["parts"][0]["url"]
    sig = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    forged = url[:sig] + ("1" if url[sig] == "0" else "0") + url[sig + 1 :]
    for bad in (forged, url.replace("partNumber=1", "partNumber=2")):
        assert requests.put(bad, data=b"x", timeout=30).status_code == 403
    assert s3.list_parts(Bucket=BUCKET, Key=PREFIX + "uploads/presigned-" + plan["upload"],
                         UploadId=plan["upload_id"]).get("Parts", []) == []
    store.abort_presigned(plan["upload"], plan["upload_id"])
    assert leftovers(s3) == []
    it_s3.empty_bucket(s3, BUCKET)


def test_tampered_object_never_reaches_the_cache(store: S3BlobStore, s3: Any, tmp_path: Path) -> None:
    digest = store.put_bytes(DATA)
    s3.put_object(Bucket=BUCKET, Key=store.key(digest), Body=DAMAGED)  # bit rot / tampering
    with pytest.raises(StoreError, match="integrity"):
        store.local_path(digest)
    assert list((tmp_path / "cache").iterdir()) == []


def test_copy_of_objects_beyond_copy_object_limit_goes_part_by_part(store: S3BlobStore, s3: Any) -> None:
    store.copy_limit, store.copy_part = 0, 5 * MIB  # as if DATA were over CopyObject's 5 GiB
    with store.writer() as w:  # no expected digest: temporary key, then copy
        w.write(DATA)
        digest = w.commit()
    with store.open(digest) as f:
        assert f.read() == DATA
    assert leftovers(s3) == []


def test_sweep_partials_removes_crash_leftovers(store: S3BlobStore, s3: Any) -> None:
    crashed = store.writer()
    crashed.write(DATA)  # an open multipart upload, as after a crash
    s3.put_object(Bucket=BUCKET, Key=store.temp_key("0" * 32), Body=b"half")
    assert len(leftovers(s3)) == 2
    store.sweep_partials(older_than=3600)  # (moto dates every multipart upload 2010-11-10)
    assert store.temp_key("0" * 32) in leftovers(s3)  # a fresh temporary object is kept
    store.sweep_partials()
    assert leftovers(s3) == []


def test_errors_never_name_buckets_tables_or_keys(aws: None, tmp_path: Path) -> None:
    secret = "secret-bucket-name-42"
    blobs = S3BlobStore(secret, client=boto3.client("s3"), cache_dir=tmp_path)
    manifests = S3ManifestStore(secret, client=boto3.client("s3"))
    state = DynamoDBStateStore(secret, client=boto3.client("dynamodb"))
    queue = SqsJobQueue(f"https://sqs.us-east-1.amazonaws.com/123456789012/{secret}", client=boto3.client("sqs"))
    digest = d(b"x")
    calls = [
        lambda: blobs.put_bytes(b"x"),
        lambda: list(blobs.list()),
        lambda: manifests.put(ModelName.parse("m"), b"{}"),
        lambda: manifests.list(),
        lambda: state.get("k", "v"),
        lambda: state.put("k", "v", {}),
        lambda: state.increment("k", "v", "n", 1),
        lambda: state.query("k"),
        lambda: queue.send({"a": 1}),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(StoreError) as info:  # noqa: PT012
            call()
            pytest.fail(f"call {i} did not fail")
        assert secret not in str(info.value) and digest.hex not in str(info.value)


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a//b/", "a/../b/", "a b/", ".hidden/x/"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        normalize_prefix(prefix)


def test_prefixes_are_normalized() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("models") == "models/"
    assert normalize_prefix("team-a/models/") == "team-a/models/"


def test_bootstrap_creates_what_the_template_declares(aws: None) -> None:
    made = bootstrap(bucket=BUCKET, table=TABLE, queue="jobs", prefix=PREFIX)
    ddb, sqs, s3 = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3")
    ttl = ddb.describe_time_to_live(TableName=made.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"
    backups = ddb.describe_continuous_backups(TableName=made.table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    attrs = sqs.get_queue_attributes(QueueUrl=made.queue_url, AttributeNames=["All"])["Attributes"]
    assert "deadLetterTargetArn" in attrs["RedrivePolicy"]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=made.bucket)["Rules"]
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    assert s3.get_public_access_block(Bucket=made.bucket)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
