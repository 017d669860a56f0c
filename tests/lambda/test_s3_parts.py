"""The S3 part store of pulls (moto's S3 and DynamoDB on 127.0.0.1): S3's 5 MiB minimum part size
holds for every part but the blob's last; the multipart state survives a new store (a new Lambda
invocation); an upload that expired meanwhile starts again; a temporary object changed after it
was verified is never copied under the blob's name; scoped stores never share an upload."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from lambda_support import FakeAws

from skyllama.adapters.aws.dynamodb_state import DynamoDBStateStore
from skyllama.adapters.aws.s3_blobs import S3BlobStore
from skyllama.adapters.aws.s3_parts import KIND, S3PartStore
from skyllama.digests import Digest
from skyllama.errors import StoreError

MIB = 1 << 20


@pytest.fixture
def stores(fake_aws: FakeAws) -> tuple[S3BlobStore, DynamoDBStateStore]:
    return (
        S3BlobStore(fake_aws.bucket, client=fake_aws.client("s3")),
        DynamoDBStateStore(fake_aws.table, client=fake_aws.client("dynamodb")),
    )


def feed(
    store: S3PartStore, digest: Digest, data: bytes, ranges: list[list[int]], upto: int | None = None
) -> None:
    """Append each range's bytes in 4 MiB pieces, as the download does (``upto`` bytes per range)."""
    for n, (start, end) in enumerate(ranges):
        stop = end if upto is None else min(end, start + upto)
        for at in range(start + store.size(digest, n), stop, 4 * MIB):
            store.append(digest, n, data[at : min(at + 4 * MIB, stop)])


def s3_parts(blobs: S3BlobStore, record: dict[str, Any]) -> list[int]:
    listed = blobs.client.list_parts(Bucket=blobs.bucket, Key=record["key"], UploadId=record["upload_id"])
    return [p["Size"] for p in listed.get("Parts", [])]


def test_parts_keep_s3_minimum_and_commit_only_verified_bytes(stores: Any) -> None:
    blobs, state = stores
    data = os.urandom(26 * MIB)
    digest = Digest(hashlib.sha256(data).hexdigest())
    ranges = [[0, 12 * MIB], [12 * MIB, 25 * MIB], [25 * MIB, 26 * MIB]]
    store = S3PartStore(blobs, state)
    store.begin(digest, ranges)
    feed(store, digest, data, ranges)
    record = state.get(KIND, digest.hex)
    assert record is not None
    # 12 MiB stays one part (8 + 4 would leave a 4 MiB part); 13 MiB is 8 + 5; the blob's last is 1 MiB
    assert s3_parts(blobs, record) == [12 * MIB, 8 * MIB, 5 * MIB, 1 * MIB]
    assert store.verify(digest, 3) and blobs.size(digest) is None  # verified, still not a blob
    store.commit(digest, 3, blobs)
    store.clear(digest)
    assert blobs.read_bytes(digest, limit=64 * MIB) == data
    assert state.get(KIND, digest.hex) is None
    assert "Contents" not in blobs.client.list_objects_v2(Bucket=blobs.bucket, Prefix=record["key"])


def test_a_new_store_continues_the_upload_and_an_expired_one_starts_again(stores: Any) -> None:
    blobs, state = stores
    data = os.urandom(20 * MIB)
    digest = Digest(hashlib.sha256(data).hexdigest())
    ranges = [[0, 20 * MIB]]
    first = S3PartStore(blobs, state)
    first.begin(digest, ranges)
    feed(first, digest, data, ranges, upto=10 * MIB)  # 8 MiB sent, 2 MiB only in this process
    later = S3PartStore(blobs, state)  # the next invocation
    later.begin(digest, ranges)
    assert later.size(digest, 0) == 8 * MIB
    record = state.get(KIND, digest.hex)
    assert record is not None
    blobs.client.abort_multipart_upload(Bucket=blobs.bucket, Key=record["key"], UploadId=record["upload_id"])
    again = S3PartStore(blobs, state)
    again.begin(digest, ranges)  # the lifecycle rule aborted it: nothing is counted as held
    assert again.size(digest, 0) == 0
    feed(again, digest, data, ranges)
    assert again.verify(digest, 1)
    again.clear(digest)


def test_a_temporary_object_changed_after_verification_is_not_committed(stores: Any) -> None:
    blobs, state = stores
    data = os.urandom(6 * MIB)
    digest = Digest(hashlib.sha256(data).hexdigest())
    store = S3PartStore(blobs, state)
    store.begin(digest, [[0, len(data)]])
    feed(store, digest, data, [[0, len(data)]])
    assert store.verify(digest, 1)
    record = state.get(KIND, digest.hex)
    assert record is not None
    blobs.client.put_object(Bucket=blobs.bucket, Key=record["key"], Body=os.urandom(len(data)))
    with pytest.raises(StoreError):
        store.commit(digest, 1, blobs)
    assert blobs.size(digest) is None
    store.clear(digest)


def test_scoped_stores_never_share_an_upload(stores: Any) -> None:
    blobs, state = stores
    data = os.urandom(10 * MIB)
    digest = Digest(hashlib.sha256(data).hexdigest())
    ranges = [[0, len(data)]]
    one, two = S3PartStore(blobs, state).scoped("job-a"), S3PartStore(blobs, state).scoped("job-b")
    one.begin(digest, ranges)
    two.begin(digest, ranges)
    feed(one, digest, data, ranges)
    feed(two, digest, bytes(len(data)), ranges)  # another job's bytes (here: wrong ones)
    assert one.verify(digest, 1) and not two.verify(digest, 1)
    one.clear(digest)
    two.clear(digest)
