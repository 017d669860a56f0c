"""Fixtures for the contract suites: every port's adapters, local and AWS (moto), side by side.

Each ``*_store`` fixture is parametrized over ``local`` and ``aws`` and yields a small harness:
the adapter plus what a test needs to look behind it (leftover temporary objects, raw clients).
The S3 ones also run on ``it-s3``, a real S3 engine at ``IT_S3_ENDPOINT`` (LocalStack in CI,
see ``it_s3.py``), which checks the checksums and signatures moto ignores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_support import BUCKET, MIB, PREFIX, QUEUE, TABLE, BlobHarness, FakeClock, client

import it_s3


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS, with fake credentials so nothing can reach a real account."""
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # AWS applies each request to an item atomically; moto's in-process backends do not (two
    # threads' UpdateItem ADDs can interleave inside moto). Serializing requests restores the
    # service's guarantee without hiding ours: a client-side read-modify-write spans two
    # requests and would still lose updates under this lock.
    lock = threading.Lock()
    handle = BotocoreStubber.__call__

    def serialized(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return handle(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", serialized)
    with mock_aws():
        yield


def _empty_bucket(request: pytest.FixtureRequest) -> Any:
    """An S3 client with an empty BUCKET: on moto ("aws") or on the real S3 engine (``it_s3``)."""
    from skyllama.adapters.aws.tables import create_bucket

    if request.param != "aws":
        return it_s3.fresh_bucket(BUCKET, prefix=PREFIX)
    request.getfixturevalue("aws")
    s3 = client("s3")
    create_bucket(s3, BUCKET, prefix=PREFIX)
    return s3


@pytest.fixture(params=["local", "aws", it_s3.KIND])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobHarness]:
    if request.param == "local":
        from skyllama.adapters.local.blobs import LocalBlobStore

        local = LocalBlobStore(tmp_path / "models")
        yield BlobHarness(
            "local", local, lambda: sorted(p.name for p in local.folder.iterdir() if p.name.startswith("."))
        )
        return
    from skyllama.adapters.aws.s3_blobs import S3BlobStore

    s3 = _empty_bucket(request)
    store = S3BlobStore(BUCKET, prefix=PREFIX, client=s3, cache_dir=tmp_path / "cache", part_size=5 * MIB)

    def leftovers() -> list[str]:
        temp = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "uploads/").get("Contents", [])
        open_uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        cached = [p.name for p in (tmp_path / "cache").glob(".*")]
        return [o["Key"] for o in temp] + [u["Key"] for u in open_uploads] + cached

    yield BlobHarness(request.param, store, leftovers, s3=s3)
    if request.param == it_s3.KIND:  # the real engine outlives the test: leave its bucket empty
        it_s3.empty_bucket(s3, BUCKET)


@pytest.fixture(params=["local", "aws", it_s3.KIND])
def manifests(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        from skyllama.adapters.local.manifests import LocalManifestStore

        yield LocalManifestStore(tmp_path / "models")
        return
    from skyllama.adapters.aws.s3_manifests import S3ManifestStore

    s3 = _empty_bucket(request)
    yield S3ManifestStore(BUCKET, prefix=PREFIX, client=s3)
    if request.param == it_s3.KIND:
        it_s3.empty_bucket(s3, BUCKET)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "aws"])
def state(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    if request.param == "local":
        from skyllama.adapters.local.sqlite_state import SqliteStateStore

        store = SqliteStateStore(tmp_path / "state.db", clock=clock)
        yield store
        store.close()
        return
    request.getfixturevalue("aws")
    from skyllama.adapters.aws.dynamodb_state import DynamoDBStateStore
    from skyllama.adapters.aws.tables import create_table

    ddb = client("dynamodb")
    create_table(ddb, TABLE)
    yield DynamoDBStateStore(TABLE, client=ddb, clock=clock)


@pytest.fixture(params=["local", "aws"])
def jobs(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "local":
        from skyllama.adapters.local.jobs import LocalJobQueue

        queue = LocalJobQueue()
        yield queue
        queue.close()
        return
    request.getfixturevalue("aws")
    from skyllama.adapters.aws.sqs_jobs import SqsJobQueue
    from skyllama.adapters.aws.tables import create_queue

    sqs = client("sqs")
    url, _dlq = create_queue(sqs, QUEUE)
    yield SqsJobQueue(url, client=sqs)
