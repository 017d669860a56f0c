"""BlobStore contract: the local folder, moto's S3 and a real S3 behave the same (T-02, T-04, T-26)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from contract_support import MIB, PREFIX, BlobHarness, seed_s3

from skyllama.digests import Digest
from skyllama.errors import BlobNotFound, DigestMismatch

SMALL = b"hello, blobs\n" * 100
BIG = os.urandom(11 * MIB + 12345)  # three parts at the 5 MiB part size the fixture uses


def d(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest())


def read_all(h: BlobHarness, digest: Digest, offset: int = 0) -> bytes:
    with h.store.open(digest, offset) as f:
        return f.read()


def assert_nothing_kept(h: BlobHarness, digest: Digest) -> None:
    assert not h.store.exists(digest)
    assert h.store.size(digest) is None
    assert list(h.store.list()) == []
    assert h.leftovers() == []


@pytest.mark.parametrize("data", [b"", SMALL, BIG], ids=["empty", "small", "multipart"])
def test_put_get_size_exists_delete(blobs: BlobHarness, data: bytes) -> None:
    digest = blobs.store.put_bytes(data, d(data))
    assert digest == d(data)
    assert blobs.store.exists(digest)
    assert blobs.store.size(digest) == len(data)
    assert read_all(blobs, digest) == data
    assert list(blobs.store.list()) == [digest]
    assert blobs.leftovers() == []
    assert blobs.store.delete(digest) is True
    assert blobs.store.delete(digest) is False
    assert_nothing_kept(blobs, digest)


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "multipart"])
def test_writer_without_expected_digest_names_the_blob_itself(blobs: BlobHarness, data: bytes) -> None:
    with blobs.store.writer() as w:
        for i in range(0, len(data), 3 * MIB + 7):
            w.write(data[i : i + 3 * MIB + 7])
        assert w.written == len(data)
        digest = w.commit()
    assert digest == d(data)
    assert read_all(blobs, digest) == data
    assert blobs.leftovers() == []


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "multipart"])
def test_digest_mismatch_keeps_nothing(blobs: BlobHarness, data: bytes) -> None:
    claimed = d(b"something else")
    with pytest.raises(DigestMismatch):
        blobs.store.put_bytes(data, claimed)
    assert_nothing_kept(blobs, claimed)
    assert not blobs.store.exists(d(data))


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "multipart"])
def test_abort_keeps_nothing(blobs: BlobHarness, data: bytes) -> None:
    w = blobs.store.writer(d(data))
    w.write(data)
    w.abort()
    assert_nothing_kept(blobs, d(data))


@pytest.mark.parametrize("expected", [True, False], ids=["expected", "unnamed"])
def test_writer_exception_keeps_nothing(blobs: BlobHarness, expected: bool) -> None:
    with pytest.raises(RuntimeError, match="connection dropped"), blobs.store.writer(
        d(BIG) if expected else None
    ) as w:
        w.write(BIG[: 7 * MIB])  # past the first part: a multipart upload is open
        raise RuntimeError("connection dropped")
    assert_nothing_kept(blobs, d(BIG))


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "multipart"])
def test_concurrent_identical_uploads_end_with_one_object(blobs: BlobHarness, data: bytes) -> None:
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            blobs.store.put_bytes(data, d(data))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(blobs.store.list()) == [d(data)]
    assert read_all(blobs, d(data)) == data
    assert blobs.leftovers() == []


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "multipart"])
def test_read_from_offset(blobs: BlobHarness, data: bytes) -> None:
    digest = blobs.store.put_bytes(data)
    for offset in (0, 1, len(data) // 2, len(data) - 1, len(data), len(data) + 10):
        assert read_all(blobs, digest, offset) == data[offset:]


def test_missing_blob(blobs: BlobHarness) -> None:
    missing = d(b"never stored")
    assert blobs.store.size(missing) is None
    assert not blobs.store.exists(missing)
    assert blobs.store.delete(missing) is False
    with pytest.raises(BlobNotFound):
        blobs.store.open(missing)
    with pytest.raises(BlobNotFound):
        blobs.store.open(missing, 5)
    with pytest.raises(BlobNotFound):
        blobs.store.local_path(missing)


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "parallel-ranges"])
def test_local_path_holds_the_verified_bytes(blobs: BlobHarness, data: bytes) -> None:
    digest = blobs.store.put_bytes(data)
    path = blobs.store.local_path(digest)
    assert path.read_bytes() == data
    assert blobs.store.local_path(digest) == path
    assert blobs.leftovers() == []


def test_list_beyond_one_page(blobs: BlobHarness) -> None:
    count = 1_005  # S3 lists at most 1,000 keys per page
    blobs_by_digest = {d(f"blob {i}".encode()): f"blob {i}".encode() for i in range(count)}
    digests = set(blobs_by_digest)
    # Straight into the layout: the writers' paths are covered above, and this stays fast.
    if blobs.kind != "local":
        seed_s3({f"{PREFIX}{k.blob_key()}": v for k, v in blobs_by_digest.items()}, blobs.s3)
    else:
        for k, v in blobs_by_digest.items():
            (blobs.store.folder / k.filename).write_bytes(v)
    listed = list(blobs.store.list())
    assert len(listed) == count
    assert set(listed) == digests


def test_list_reports_only_committed_blobs(blobs: BlobHarness) -> None:
    done = blobs.store.put_bytes(SMALL)
    pending = blobs.store.writer()
    pending.write(BIG)  # open multipart upload / partial file
    assert list(blobs.store.list()) == [done]
    pending.abort()
    assert blobs.leftovers() == []
