"""T-26 checksum strategy: a single PutObject carries ``ChecksumSHA256`` (the base64 sha256 we
computed, so S3 verifies it too); each part of a multipart upload carries its own
``ChecksumSHA256``, and the whole blob is verified by our own full sha256 before
``CompleteMultipartUpload`` (S3 only checksums parts), so a mismatch completes nothing.

moto checks no checksums, so the refusals themselves run on the real-S3 tier
(``IT_S3_ENDPOINT``: LocalStack's S3 in ``.ci/run``, see ``tests/it_s3.py``); without it they skip.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from faults import BUCKET, PREFIX, aws_stores, moto_aws

import it_s3
from skyllama.adapters.aws._common import error_code
from skyllama.adapters.aws.s3_blobs import S3BlobStore
from skyllama.digests import Digest
from skyllama.errors import DigestMismatch, StoreError

BIG = os.urandom(11 << 20)  # three parts at the 5 MiB part size of aws_stores


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def recorder(client: Any, op: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.meta.events.register(f"provide-client-params.s3.{op}", lambda params, **_k: seen.append(dict(params)))
    return seen


def test_single_put_carries_our_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, blobs, _m, _s = aws_stores(tmp_path / "cache")
        puts = recorder(s3, "PutObject")
        data = b"small blob"
        blobs.put_bytes(data, Digest.of_bytes(data))
        assert [p["ChecksumSHA256"] for p in puts] == [b64sha256(data)]


def test_multipart_is_verified_by_our_full_hash_before_completing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, blobs, _m, _s = aws_stores(tmp_path / "cache")
        creates, parts = recorder(s3, "CreateMultipartUpload"), recorder(s3, "UploadPart")
        completes = recorder(s3, "CompleteMultipartUpload")
        wrong = Digest.of_bytes(BIG[:-1] + bytes([BIG[-1] ^ 1]))  # never BIG itself
        with pytest.raises(DigestMismatch):
            blobs.put_bytes(BIG, wrong)
        assert completes == [] and s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
        assert list(blobs.list()) == []
        good = blobs.put_bytes(BIG, Digest.of_bytes(BIG))
        assert len(completes) == 1 and list(blobs.list()) == [good]
        assert hashlib.sha256(blobs.local_path(good).read_bytes()).hexdigest() == good.hex
        # every part names its own sha256, and the completion lists them
        assert {c["ChecksumAlgorithm"] for c in creates} == {"SHA256"}
        assert parts and all(p["ChecksumSHA256"] == b64sha256(p["Body"]) for p in parts)
        listed = completes[0]["MultipartUpload"]["Parts"]
        assert [p["ChecksumSHA256"] for p in listed] == [p["ChecksumSHA256"] for p in parts[-3:]]


# -- on a real S3 engine ----------------------------------------------------------------------


@pytest.fixture
def real_s3() -> Iterator[Any]:
    """The endpoint with botocore's own checksums off (``when_required``): whatever S3 checks is
    what the caller sent, so a refusal below is our checksum's doing, not botocore's CRC32."""
    it_s3.require()
    it_s3.fresh_bucket(BUCKET, prefix=PREFIX)
    s3 = it_s3.new_client(request_checksum_calculation="when_required")
    yield s3
    it_s3.empty_bucket(s3, BUCKET)


@pytest.mark.parametrize("header", ["sha256", "content-md5", "part-sha256"])
def test_real_s3_rejects_a_wrong_checksum(real_s3: Any, header: str) -> None:
    key, other = PREFIX + "blobs/x", b"other"
    upload = None
    with pytest.raises(ClientError) as info:
        if header == "sha256":
            real_s3.put_object(Bucket=BUCKET, Key=key, Body=b"data", ChecksumSHA256=b64sha256(other))
        elif header == "content-md5":
            md5 = base64.b64encode(hashlib.md5(other).digest()).decode()  # noqa: S324 - S3's own header
            real_s3.put_object(Bucket=BUCKET, Key=key, Body=b"data", ContentMD5=md5)
        else:
            made = real_s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")
            upload = made["UploadId"]
            real_s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"data",
                                ChecksumSHA256=b64sha256(other))
    assert error_code(info.value) == "BadDigest"
    assert real_s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    if upload is not None:
        assert real_s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload).get("Parts", []) == []
        real_s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)


def damage_first(client: Any, op: str) -> list[str]:
    """Flip the last byte of the first ``op`` request's body after it was signed and checksummed,
    as a bad link or proxy would."""
    hits: list[str] = []

    def damage(request: Any, **_kwargs: Any) -> None:
        if hits:
            return
        body = request.body
        data = body.read() if hasattr(body, "read") else bytes(body)
        flipped = data[:-1] + bytes([data[-1] ^ 1])
        request.body = io.BytesIO(flipped) if hasattr(body, "read") else flipped
        hits.append(op)

    client.meta.events.register(f"before-send.s3.{op}", damage)
    return hits


@pytest.mark.parametrize("data", [b"small blob", BIG], ids=["single-put", "multipart"])
def test_real_s3_refuses_an_upload_damaged_on_the_way(real_s3: Any, tmp_path: Path, data: bytes) -> None:
    blobs = S3BlobStore(BUCKET, prefix=PREFIX, client=real_s3, cache_dir=tmp_path, part_size=5 << 20)
    op = "PutObject" if len(data) < 5 << 20 else "UploadPart"
    hits = damage_first(real_s3, op)
    with pytest.raises(StoreError) as info:
        blobs.put_bytes(data, Digest.of_bytes(data))
    assert hits == [op] and info.value.__cause__ is not None
    assert error_code(info.value.__cause__) == "BadDigest"
    assert list(blobs.list()) == []
    assert real_s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    assert real_s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    # undamaged, the same upload goes through, and S3 kept the sha256 we sent
    good = blobs.put_bytes(data, Digest.of_bytes(data))
    with blobs.open(good) as f:
        assert f.read() == data
    if op == "PutObject":
        head = real_s3.head_object(Bucket=BUCKET, Key=blobs.key(good), ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == b64sha256(data)
