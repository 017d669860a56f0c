"""Blobs in S3 under the keys of the local layout: ``<prefix>blobs/sha256-<hex>``.

We hash every byte ourselves (S3 and moto never check a full sha256 of a multipart upload) and
publish under the final key only after the digest checks out:

- a blob smaller than one part is a single PutObject (atomic, with ``ChecksumSHA256`` so S3
  checks it too); each part of a multipart upload carries its own ``ChecksumSHA256``, so S3
  refuses a part damaged on the way (``BadDigest``) whatever botocore's checksum defaults are;
- a bigger blob with an expected digest is a multipart upload *to its final key*: an unfinished
  multipart upload is not an object (GET, HEAD and LIST never see it), and we only call
  CompleteMultipartUpload, which publishes atomically, after our hash matches; otherwise abort;
- a bigger blob without an expected digest (its name is unknown until the end) goes to
  ``<prefix>uploads/<uuid>``, is completed there, copied server-side to its final key, and the
  temporary key deleted.

Presigned uploads (clients whose blob exceeds Lambda's 6 MB payload) always go to a temporary
key and are read back and hashed before they are copied under their final name. Anything a
crash leaves behind is under ``uploads/`` or an open multipart upload: the bucket's lifecycle rule
and :meth:`S3BlobStore.sweep_partials` remove it, and :meth:`S3BlobStore.list` never reports it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from botocore.exceptions import ClientError

from ...digests import Digest
from ...errors import BlobNotFound, DigestMismatch, StoreError
from ...ports import BlobStore, BlobWriter
from ._common import VENDOR_ERRORS, LazyClient, error_code, is_not_found, normalize_prefix, store_error
from .s3_presigned import PresignedUploads

log = logging.getLogger(__name__)

MIB = 1 << 20
MIN_PART = 5 * MIB  # S3's minimum for every part but the last
DEFAULT_PART = 8 * MIB
MAX_COPY = 5 * (1 << 30)  # CopyObject's limit; larger objects are copied part by part
COPY_PART = 512 * MIB
_BLOB_NAME = re.compile(r"sha256-([0-9a-f]{64})")


class S3BlobWriter(BlobWriter):
    """Hashes bytes as they pass and streams them to S3 in parts of ``part_size`` or more."""

    def __init__(self, store: S3BlobStore, expected: Digest | None) -> None:
        self._store = store
        self._expected = expected
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._written = 0
        self._key: str | None = None  # target of the multipart upload, once started
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._temp_object: str | None = None  # a completed temporary object to delete on abort
        self._closed = False

    @property
    def written(self) -> int:
        return self._written

    def _part_limit(self) -> int:
        # Parts grow every 1,000 parts so that 10,000 parts reach ~430 GiB at 8 MiB.
        return self._store.part_size * (1 + len(self._parts) // 1000)

    def write(self, chunk: bytes) -> None:
        if self._closed:
            raise RuntimeError("write after commit or abort")
        self._hash.update(chunk)
        self._written += len(chunk)
        self._buf += chunk
        while len(self._buf) >= self._part_limit():
            self._upload_part(self._part_limit())

    def _upload_part(self, n: int) -> None:
        s3, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                if self._expected is not None:
                    self._key = self._store.key(self._expected)
                else:
                    self._key = self._store.temp_key(uuid.uuid4().hex)
                self._upload_id = s3.create_multipart_upload(
                    Bucket=bucket, Key=self._key, ChecksumAlgorithm="SHA256"
                )["UploadId"]
            number = len(self._parts) + 1
            body = bytes(self._buf[:n])
            checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
            resp = s3.upload_part(
                Bucket=bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body,
                ChecksumSHA256=checksum,
            )
        except VENDOR_ERRORS as e:
            self.abort()
            raise store_error("S3", "upload", e) from e
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})
        del self._buf[:n]

    def commit(self) -> Digest:
        if self._closed:
            raise RuntimeError("commit after commit or abort")
        actual = Digest(self._hash.hexdigest())
        if self._expected is not None and actual != self._expected:
            self.abort()
            raise DigestMismatch(f'digest mismatch, expected "{self._expected}", got "{actual}"')
        store, final = self._store, self._store.key(actual)
        try:
            if self._upload_id is None:
                checksum = base64.b64encode(self._hash.digest()).decode()
                store.client.put_object(
                    Bucket=store.bucket, Key=final, Body=bytes(self._buf), ChecksumSHA256=checksum
                )
            else:
                if self._buf or not self._parts:
                    self._upload_part(len(self._buf))
                store.client.complete_multipart_upload(
                    Bucket=store.bucket, Key=self._key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
                if self._key != final:
                    self._temp_object = self._key
                    store.copy(cast(str, self._key), final, self._written)
                    store.client.delete_object(Bucket=store.bucket, Key=self._temp_object)
                    self._temp_object = None
        except VENDOR_ERRORS as e:
            self.abort()
            raise store_error("S3", "commit", e) from e
        self._closed = True
        self._buf = bytearray()
        return actual

    def abort(self) -> None:
        self._closed = True
        self._buf = bytearray()
        s3, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is not None:
                s3.abort_multipart_upload(Bucket=bucket, Key=self._key, UploadId=self._upload_id)
                self._upload_id = None
            if self._temp_object is not None:
                s3.delete_object(Bucket=bucket, Key=self._temp_object)
                self._temp_object = None
        except VENDOR_ERRORS as e:  # best effort: the lifecycle rule removes what is left
            log.warning("could not clean up an aborted blob upload (%s)", error_code(e) or type(e).__name__)


class S3BlobStore(PresignedUploads, BlobStore):
    """Content-addressed blobs in an S3 bucket, hashed and verified by us on every write and read.

    ``client`` is a boto3 S3 client (made lazily when ``None``); ``cache_dir`` is where
    :meth:`local_path` keeps verified copies (default: ``<tmp>/skyllama/blobs``).
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        client: Any | None = None,
        cache_dir: Path | str | None = None,
        part_size: int = DEFAULT_PART,
        max_workers: int = 8,
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError("part_size must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self._client = LazyClient("s3", client)
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "skyllama" / "blobs"
        self.part_size = part_size
        self.max_workers = max(1, max_workers)
        self.copy_limit = MAX_COPY
        self.copy_part = COPY_PART

    @property
    def client(self) -> Any:
        return self._client.get()

    def key(self, digest: Digest) -> str:
        return self.prefix + digest.blob_key()

    def temp_key(self, upload: str) -> str:
        return f"{self.prefix}uploads/{upload}"

    def size(self, digest: Digest) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(digest))["ContentLength"])
        except ClientError as e:
            if is_not_found(e):
                return None
            raise store_error("S3", "head", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "head", e) from e

    def writer(self, expected: Digest | None = None) -> BlobWriter:
        return S3BlobWriter(self, expected)

    def open(self, digest: Digest, offset: int = 0) -> BinaryIO:
        extra = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key(digest), **extra)
        except ClientError as e:
            if is_not_found(e):
                raise BlobNotFound(f'blob "{digest}" not found') from e
            if error_code(e) == "InvalidRange" and self.size(digest) is not None:
                return io.BytesIO(b"")  # offset at or past the end, as a seek past EOF reads nothing
            raise store_error("S3", "get", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "get", e) from e
        return cast(BinaryIO, resp["Body"])

    def local_path(self, digest: Digest) -> Path:
        dest = self.cache_dir / digest.filename
        if dest.is_file():
            return dest  # only verified files are ever renamed into the cache
        key = self.key(digest)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if is_not_found(e):
                raise BlobNotFound(f'blob "{digest}" not found') from e
            raise store_error("S3", "head", e) from e
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".partial-{uuid.uuid4().hex}"
        try:
            h = hashlib.sha256()
            with open(tmp, "wb") as f:
                for chunk in self._chunks(key, int(head["ContentLength"]), head.get("ETag")):
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if h.hexdigest() != digest.hex:
                raise StoreError(f'blob "{digest}" failed its integrity check')
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _chunks(self, key: str, size: int, etag: str | None) -> Iterator[bytes]:
        """The object's bytes in order; big objects by parallel ranged GETs pinned to ``etag``."""
        try:
            if size <= self.part_size:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                yield from body.iter_chunks(1 << 20)
                return
            with ThreadPoolExecutor(self.max_workers) as pool:
                starts = iter(range(0, size, self.part_size))
                window: deque[Future[bytes]] = deque()
                for start in starts:
                    window.append(pool.submit(self._range, key, start, size, etag))
                    if len(window) >= 2 * self.max_workers:
                        break
                while window:
                    data = window.popleft().result()
                    nxt = next(starts, None)
                    if nxt is not None:
                        window.append(pool.submit(self._range, key, nxt, size, etag))
                    yield data
        except ClientError as e:
            if is_not_found(e):
                raise BlobNotFound("blob not found") from e
            raise store_error("S3", "download", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "download", e) from e

    def _range(self, key: str, start: int, size: int, etag: str | None) -> bytes:
        end = min(start + self.part_size, size) - 1
        extra = {"IfMatch": etag} if etag else {}  # a replaced object fails instead of mixing
        resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}", **extra)
        data = cast(bytes, resp["Body"].read())
        if len(data) != end - start + 1:  # e.g. a 200 with the whole object instead of a 206
            raise StoreError("S3 download returned an unexpected range")
        return data

    def delete(self, digest: Digest) -> bool:
        if self.size(digest) is None:
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        except VENDOR_ERRORS as e:
            raise store_error("S3", "delete", e) from e
        (self.cache_dir / digest.filename).unlink(missing_ok=True)
        return True

    def list(self) -> Iterator[Digest]:
        folder = self.prefix + "blobs/"
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                for obj in page.get("Contents", []):
                    m = _BLOB_NAME.fullmatch(obj["Key"][len(folder) :])
                    if m:
                        yield Digest(m.group(1))
        except VENDOR_ERRORS as e:
            raise store_error("S3", "list", e) from e

    def copy(self, src: str, dst: str, size: int, *, if_match: str | None = None) -> None:
        """Server-side copy; objects over CopyObject's 5 GiB limit are copied part by part.
        With ``if_match`` the copy fails unless the source still has that ETag."""
        source = {"Bucket": self.bucket, "Key": src}
        pin = {"CopySourceIfMatch": if_match} if if_match else {}
        if size <= self.copy_limit:
            self.client.copy_object(Bucket=self.bucket, Key=dst, CopySource=source, **pin)
            return
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=dst)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, self.copy_part), start=1):
                end = min(start + self.copy_part, size) - 1
                resp = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=number,
                    CopySource=source, CopySourceRange=f"bytes={start}-{end}", **pin,
                )
                parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise

    def sweep_partials(self, older_than: float = 0.0) -> int:
        """Abort open multipart uploads and delete temporary objects older than ``older_than`` s."""
        cutoff = time.time() - older_than
        removed = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    if up["Initiated"].timestamp() <= cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        removed += 1
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.temp_key("")
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["LastModified"].timestamp() <= cutoff:
                        self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                        removed += 1
        except VENDOR_ERRORS as e:
            raise store_error("S3", "sweep", e) from e
        return removed
