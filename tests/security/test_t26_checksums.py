"""T-26 checksum strategy: a single PutObject carries ``ChecksumSHA256`` (the base64 sha256 we
computed, so S3 verifies it too); a multipart upload is verified by our own full sha256 before
``CompleteMultipartUpload`` (S3 only checksums parts), so a mismatch completes nothing. A
real-S3/MinIO run (moto checks no checksums) needs ``IT_S3_ENDPOINT``; skipped in CI."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from faults import BUCKET, aws_stores, moto_aws

from skyllama.digests import Digest
from skyllama.errors import DigestMismatch


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
        assert [p["ChecksumSHA256"] for p in puts] == [base64.b64encode(hashlib.sha256(data).digest()).decode()]


def test_multipart_is_verified_by_our_full_hash_before_completing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, blobs, _m, _s = aws_stores(tmp_path / "cache")
        completes = recorder(s3, "CompleteMultipartUpload")
        data = os.urandom(11 << 20)
        wrong = Digest.of_bytes(data[:-1] + b"!")
        with pytest.raises(DigestMismatch):
            blobs.put_bytes(data, wrong)
        assert completes == [] and s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
        assert list(blobs.list()) == []
        good = blobs.put_bytes(data, Digest.of_bytes(data))
        assert len(completes) == 1 and list(blobs.list()) == [good]
        assert hashlib.sha256(blobs.local_path(good).read_bytes()).hexdigest() == good.hex


@pytest.mark.skipif(not os.environ.get("IT_S3_ENDPOINT"), reason="needs a real S3 or MinIO endpoint")
def test_real_s3_rejects_a_bad_checksum() -> None:  # pragma: no cover - integration, not in CI
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=os.environ["IT_S3_ENDPOINT"])
    bucket = os.environ.get("IT_S3_BUCKET", "skyllama-it")
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="it/blobs/x", Body=b"data", ChecksumSHA256=wrong)
