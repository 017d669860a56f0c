"""Pull parts as one S3 multipart upload that a later Lambda invocation continues.

Each download part ``n`` (a byte range of the blob, see ``services/download.py``) owns a run of
S3 part numbers (``n * per + 1 ...``, ``per = 10000 // parts``: numbers need not be consecutive)
of one multipart upload to a temporary key, ``<prefix>uploads/pull-<hex>[-<scope>]``. Bytes are
buffered in memory and sent as S3 parts of ``piece`` bytes; a range's tail shorter than S3's
5 MiB minimum goes out with its last piece, so only the blob's very last part can be small.
The UploadId and every sent part's ETag and size are saved in the StateStore after each part:
a new invocation (a re-queued job) continues the same upload. Bytes still buffered when an
invocation stops are fetched again; nothing else is.

When every part is in, :meth:`S3PartStore.verify` completes the upload (still under
``uploads/``), reads the object back and hashes it (a sha256 state cannot be saved between
invocations); :meth:`S3PartStore.commit` copies it server-side to ``blobs/sha256-<hex>``,
pinned to the verified ETag, and :meth:`S3PartStore.clear` deletes the temporary object. A blob
name never holds unverified bytes. What a crash leaves under ``uploads/`` or as an open upload
is removed by the bucket's lifecycle rules.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from ...digests import Digest
from ...errors import StoreError
from ...ports import PULL_CHECKPOINT_TTL, BlobStore, PartStore, StateStore
from ._common import VENDOR_ERRORS, error_code, is_not_found, store_error
from .s3_blobs import MIN_PART, S3BlobStore

log = logging.getLogger(__name__)

KIND = "pull_multipart"
MAX_PART_NUMBER = 10_000
MAX_PIECES = 4_000  # keeps the saved part list well under DynamoDB's 400 KB item limit

Record = dict[str, Any]


class S3PartStore(PartStore):
    """Download parts of ``blobs``' bucket, their multipart state in ``state``."""

    min_part = MIN_PART

    def __init__(
        self, blobs: S3BlobStore, state: StateStore, *, piece: int | None = None, scope: str = ""
    ) -> None:
        self.blobs, self.state, self.scope = blobs, state, scope
        self.piece = max(MIN_PART, piece or blobs.part_size)
        self._records: dict[str, Record] = {}
        self._buffers: dict[tuple[str, int], bytearray] = {}
        self._lock = threading.Lock()

    def scoped(self, scope: str) -> S3PartStore:
        return S3PartStore(self.blobs, self.state, piece=self.piece, scope=scope)

    # -- the record --------------------------------------------------------------------------

    def _id(self, digest: Digest) -> str:
        return f"{digest.hex}.{self.scope}" if self.scope else digest.hex

    def _fresh(self, digest: Digest, ranges: list[list[int]]) -> Record:
        suffix = f"-{self.scope}" if self.scope else ""
        return {
            "key": self.blobs.temp_key(f"pull-{digest.hex}{suffix}"),
            "upload_id": None,
            "etag": None,
            "ranges": ranges,
            "parts": [[] for _ in ranges],
        }

    def _save(self, digest: Digest, record: Record) -> None:
        self.state.put(KIND, self._id(digest), record, expires_at=time.time() + PULL_CHECKPOINT_TTL)

    def _record(self, digest: Digest) -> Record:
        record = self._records.get(digest.hex)
        if record is None:
            record = self.state.get(KIND, self._id(digest)) or self._fresh(digest, [])
            self._records[digest.hex] = record
        return record

    def begin(self, digest: Digest, parts: list[list[int]]) -> None:
        with self._lock:
            for key in [k for k in self._buffers if k[0] == digest.hex]:
                del self._buffers[key]  # only what S3 holds counts after a (re)load
            record = self.state.get(KIND, self._id(digest))
            if record is None or record.get("ranges") != parts or not self._alive(record):
                if record is not None:
                    self._discard(record)
                record = self._fresh(digest, parts)
                self._save(digest, record)
            self._records[digest.hex] = record

    def _alive(self, record: Record) -> bool:
        """Whether the upload (or the completed object) is still there (lifecycle rules expire them)."""
        s3, bucket = self.blobs.client, self.blobs.bucket
        try:
            if record.get("etag"):
                s3.head_object(Bucket=bucket, Key=record["key"], IfMatch=record["etag"])
            elif record.get("upload_id"):
                s3.list_parts(Bucket=bucket, Key=record["key"], UploadId=record["upload_id"], MaxParts=1)
        except ClientError as e:
            if is_not_found(e) or error_code(e) == "PreconditionFailed":
                return False
            raise store_error("S3", "resume", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "resume", e) from e
        return True

    def _discard(self, record: Record) -> None:
        s3, bucket = self.blobs.client, self.blobs.bucket
        try:
            if record.get("upload_id"):
                s3.abort_multipart_upload(Bucket=bucket, Key=record["key"], UploadId=record["upload_id"])
            if record.get("etag"):
                s3.delete_object(Bucket=bucket, Key=record["key"])
        except VENDOR_ERRORS as e:  # best effort: the lifecycle rules remove what is left
            if not (isinstance(e, ClientError) and is_not_found(e)):
                log.warning("could not discard a pull upload (%s)", error_code(e) or type(e).__name__)

    # -- parts -------------------------------------------------------------------------------

    def _sent(self, record: Record, n: int) -> int:
        parts = record["parts"]
        return sum(size for _etag, size in parts[n]) if n < len(parts) else 0

    def size(self, digest: Digest, n: int) -> int:
        with self._lock:
            return self._sent(self._record(digest), n) + len(self._buffers.get((digest.hex, n), b""))

    def _piece(self, record: Record, n: int) -> int:
        ranges = record["ranges"]
        total = ranges[-1][1] if ranges else 0
        per = MAX_PART_NUMBER // max(1, len(ranges))
        start, end = ranges[n]
        return max(self.piece, -(-(end - start) // per), -(-total // MAX_PIECES))

    def append(self, digest: Digest, n: int, data: bytes) -> None:
        buffer = self._buffers.setdefault((digest.hex, n), bytearray())
        buffer += data
        while True:
            with self._lock:
                record = self._record(digest)
                start, end = record["ranges"][n]
                rest = end - start - self._sent(record, n)  # bytes S3 does not hold yet
                piece = self._piece(record, n)
            if buffer and len(buffer) >= rest:
                take = len(buffer)  # the range's last piece, whatever its size
            elif len(buffer) >= piece and rest - piece >= MIN_PART:
                take = piece
            else:
                return
            self._send(digest, record, n, bytes(buffer[:take]))
            del buffer[:take]

    def _send(self, digest: Digest, record: Record, n: int, body: bytes) -> None:
        s3, bucket = self.blobs.client, self.blobs.bucket
        try:
            with self._lock:
                if record["upload_id"] is None:
                    record["upload_id"] = s3.create_multipart_upload(Bucket=bucket, Key=record["key"])[
                        "UploadId"
                    ]
                    self._save(digest, record)
                number = self._number(record, n, len(record["parts"][n]))
            etag = s3.upload_part(
                Bucket=bucket, Key=record["key"], UploadId=record["upload_id"], PartNumber=number, Body=body
            )["ETag"]
        except VENDOR_ERRORS as e:
            raise store_error("S3", "upload part", e) from e
        with self._lock:
            record["parts"][n].append([etag, len(body)])
            self._save(digest, record)

    @staticmethod
    def _number(record: Record, n: int, i: int) -> int:
        return n * (MAX_PART_NUMBER // max(1, len(record["ranges"]))) + i + 1

    def truncate(self, digest: Digest, n: int) -> None:
        with self._lock:
            self._buffers.pop((digest.hex, n), None)
            record = self._record(digest)
            if n < len(record["parts"]):
                record["parts"][n] = []  # re-sent parts reuse (overwrite) the same numbers
                self._save(digest, record)

    def read(self, digest: Digest, n: int) -> Any:
        record = self._record(digest)
        if not record.get("etag"):
            raise StoreError("pull parts are not readable before the upload is complete")
        start, end = record["ranges"][n]
        try:
            return self.blobs.client.get_object(
                Bucket=self.blobs.bucket,
                Key=record["key"],
                Range=f"bytes={start}-{end - 1}",
                IfMatch=record["etag"],
            )["Body"]
        except VENDOR_ERRORS as e:
            raise store_error("S3", "get", e) from e

    def clear(self, digest: Digest) -> None:
        with self._lock:
            for key in [k for k in self._buffers if k[0] == digest.hex]:
                del self._buffers[key]
            record = self._records.pop(digest.hex, None) or self.state.get(KIND, self._id(digest))
            if record is not None:
                self._discard(record)
            self.state.delete(KIND, self._id(digest))

    # -- verify and publish ------------------------------------------------------------------

    def _complete(self, digest: Digest, record: Record) -> None:
        s3, bucket = self.blobs.client, self.blobs.bucket
        try:
            if record["upload_id"] is None:  # an empty blob has no parts
                record["etag"] = s3.put_object(Bucket=bucket, Key=record["key"], Body=b"")["ETag"]
            else:
                parts = [
                    {"PartNumber": self._number(record, n, i), "ETag": etag}
                    for n, sent in enumerate(record["parts"])
                    for i, (etag, _size) in enumerate(sent)
                ]
                record["etag"] = s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=record["key"],
                    UploadId=record["upload_id"],
                    MultipartUpload={"Parts": parts},
                )["ETag"]
        except VENDOR_ERRORS as e:
            raise store_error("S3", "complete", e) from e
        record["upload_id"] = None
        with self._lock:
            self._save(digest, record)

    def verify(self, digest: Digest, count: int) -> bool:
        record = self._record(digest)
        size = sum(self._sent(record, n) for n in range(len(record["parts"])))
        if size != (record["ranges"][-1][1] if record["ranges"] else 0):
            return False
        if not record.get("etag"):
            self._complete(digest, record)
        h = hashlib.sha256()
        for chunk in self.blobs._chunks(record["key"], size, record["etag"]):  # noqa: SLF001 - same adapter
            h.update(chunk)
        return h.hexdigest() == digest.hex

    def commit(self, digest: Digest, count: int, blobs: BlobStore) -> None:
        if blobs is not self.blobs:
            return super().commit(digest, count, blobs)
        record = self._record(digest)
        if not record.get("etag"):
            raise StoreError("pull upload committed before it was verified")
        size = sum(self._sent(record, n) for n in range(len(record["parts"])))
        if not self._alive(record):  # changed or gone since it was verified (moto ignores CopySourceIfMatch)
            raise StoreError("pull upload changed after it was verified")
        try:
            self.blobs.copy(record["key"], self.blobs.key(digest), size, if_match=record["etag"])
        except VENDOR_ERRORS as e:
            raise store_error("S3", "commit", e) from e
