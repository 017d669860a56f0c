"""Presigned multipart uploads: clients PUT big blobs straight to S3, past Lambda's 6 MB payload.

Parts go to a temporary key (``<prefix>uploads/presigned-<uuid>``), never the final one: the
bytes come from the client unchecked, so :meth:`PresignedUploads.complete_presigned` completes
the upload, reads the object back while hashing it, and only then copies it under
``blobs/sha256-<hex>``. The temporary object is deleted whatever happens.

An upload is opened only for a client that asks for one (``?presign=1``). An interrupted upload
resumes: :meth:`PresignedUploads.resume_presigned` lists the parts S3 already holds and signs
fresh URLs for the others. One left alone for longer than the upload TTL (no part written for
that long) is aborted by the next :meth:`PresignedUploads.presign_upload` of any client
(:meth:`PresignedUploads.sweep_presigned`); the bucket's lifecycle rule is the backstop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from ...digests import Digest
from ...errors import BadRequest, DigestMismatch, NotFound
from ._common import VENDOR_ERRORS, error_code, is_not_found, store_error

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
MAX_OBJECT = 5 * (1 << 40)
PRESIGN_EXPIRES = 3600
_UPLOAD = re.compile(r"[0-9a-f]{32}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9._~+/=-]{1,1024}")
PRESIGNED = "presigned-"  # temp key marker: pulls' and in-process writers' uploads are not these


class PresignedUploads:
    """Mixed into :class:`~skyllama.adapters.aws.s3_blobs.S3BlobStore`."""

    bucket: str
    part_size: int

    @property
    def client(self) -> Any:
        raise NotImplementedError

    def key(self, digest: Digest) -> str:
        raise NotImplementedError

    def temp_key(self, upload: str) -> str:
        raise NotImplementedError

    def copy(self, src: str, dst: str, size: int) -> None:
        raise NotImplementedError

    def _chunks(self, key: str, size: int, etag: str | None) -> Iterator[bytes]:
        raise NotImplementedError

    def presign_upload(self, digest: Digest, size: int, *, expires_in: int = PRESIGN_EXPIRES,
                       ttl: float | None = None) -> dict[str, Any]:
        """Open a multipart upload and presign a URL for each of its parts (past Lambda's 6 MB).

        The client PUTs part ``n`` (``part_size`` bytes, the last one shorter) to its URL, then
        asks for :meth:`complete_presigned` with ``upload`` and ``upload_id``. With ``ttl``,
        presigned uploads idle for longer than that are aborted first.
        """
        part, count = self._plan(size)
        if ttl is not None:
            self.sweep_presigned(ttl)
        upload = uuid.uuid4().hex
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self._presigned_key(upload), Metadata={"digest": digest.hex}
            )["UploadId"]
        except VENDOR_ERRORS as e:
            raise store_error("S3", "presign", e) from e
        return self._signed(digest, size, upload, upload_id, part, count, {}, expires_in)

    def resume_presigned(self, digest: Digest, size: int, upload: str, upload_id: str, *,
                         expires_in: int = PRESIGN_EXPIRES) -> dict[str, Any]:
        """The plan of an upload already open: ``done`` lists the parts S3 holds (number, etag,
        size); the other parts get fresh URLs. An unknown or finished upload is :class:`NotFound`."""
        self._check_ids(upload, upload_id)
        part, count = self._plan(size)
        key = self._presigned_key(upload)
        done: dict[int, dict[str, Any]] = {}
        try:
            for page in self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            ):
                for p in page.get("Parts", []):
                    n = int(p["PartNumber"])
                    if n <= count and int(p["Size"]) == min(part, size - (n - 1) * part):
                        done[n] = {"part_number": n, "etag": p["ETag"], "size": int(p["Size"])}
        except ClientError as e:
            if is_not_found(e):
                raise NotFound("upload not found: start a new one") from e
            raise store_error("S3", "resume upload", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "resume upload", e) from e
        return self._signed(digest, size, upload, upload_id, part, count, done, expires_in)

    def sweep_presigned(self, older_than: float) -> int:
        """Abort presigned uploads with no part written for ``older_than`` seconds."""
        cutoff = time.time() - older_than
        aborted = 0
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.temp_key(PRESIGNED)
            ):
                for up in page.get("Uploads", []):
                    if up["Initiated"].timestamp() > cutoff or self._last_part(up) > cutoff:
                        continue  # young, or still being written (S3 keeps no last-activity time)
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                    aborted += 1
        except VENDOR_ERRORS as e:  # a failed sweep must not refuse the upload that triggered it
            log.warning("could not sweep abandoned uploads (%s)", error_code(e) or type(e).__name__)
        if aborted:
            log.info("aborted %d abandoned presigned upload(s)", aborted)
        return aborted

    def _last_part(self, up: dict[str, Any]) -> float:
        newest = 0.0
        for page in self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
        ):
            for p in page.get("Parts", []):
                newest = max(newest, p["LastModified"].timestamp())
        return newest

    def _plan(self, size: int) -> tuple[int, int]:
        if not 0 <= size <= MAX_OBJECT:
            raise BadRequest("invalid blob size")
        part = self.part_size
        while math.ceil(size / part) > MAX_PARTS:
            part *= 2
        return part, max(1, math.ceil(size / part))

    def _presigned_key(self, upload: str) -> str:
        return self.temp_key(PRESIGNED + upload)

    @staticmethod
    def _check_ids(upload: str, upload_id: str) -> None:
        if not _UPLOAD.fullmatch(upload) or not _UPLOAD_ID.fullmatch(upload_id):
            raise BadRequest("invalid upload id")

    def _signed(self, digest: Digest, size: int, upload: str, upload_id: str, part: int, count: int,
                done: dict[int, dict[str, Any]], expires_in: int) -> dict[str, Any]:
        key = self._presigned_key(upload)
        try:
            urls = {
                n: self.client.generate_presigned_url(
                    "upload_part",
                    Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
                    ExpiresIn=expires_in,
                )
                for n in range(1, count + 1) if n not in done
            }
        except VENDOR_ERRORS as e:
            raise store_error("S3", "presign", e) from e
        return {
            "digest": str(digest),
            "size": size,
            "upload": upload,
            "upload_id": upload_id,
            "part_size": part,
            "parts": [{"part_number": n, "url": url, "size": min(part, size - (n - 1) * part)}
                      for n, url in urls.items()],
            "done": [done[n] for n in sorted(done)],
            "expires_in": expires_in,
        }

    def complete_presigned(
        self, digest: Digest, upload: str, upload_id: str, parts: list[dict[str, Any]] | None = None
    ) -> Digest:
        """Complete a presigned upload, read it back to verify its sha256, and publish it.

        ``parts`` (``PartNumber``/``ETag`` pairs) default to what S3 lists for the upload. On a
        mismatch nothing is kept and :class:`DigestMismatch` is raised.
        """
        self._check_ids(upload, upload_id)
        key = self._presigned_key(upload)
        try:
            if parts is None:
                parts = []
                for page in self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ):
                    parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in page.get("Parts", [])]
            if not parts:
                raise BadRequest("no parts were uploaded")
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
            )
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if is_not_found(e):
                raise NotFound("upload not found") from e
            raise store_error("S3", "complete upload", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("S3", "complete upload", e) from e
        try:
            size = int(head["ContentLength"])
            if head.get("Metadata", {}).get("digest") != digest.hex:
                raise BadRequest("the upload was presigned for another digest")
            h = hashlib.sha256()
            for chunk in self._chunks(key, size, head.get("ETag")):
                h.update(chunk)
            actual = Digest(h.hexdigest())
            if actual != digest:
                raise DigestMismatch(f'digest mismatch, expected "{digest}", got "{actual}"')
            self.copy(key, self.key(digest), size)
        except VENDOR_ERRORS as e:
            raise store_error("S3", "complete upload", e) from e
        finally:
            self._delete_quietly(key)
        return digest

    def abort_presigned(self, upload: str, upload_id: str) -> None:
        """Give up a presigned upload: its parts and any temporary object are removed."""
        self._check_ids(upload, upload_id)
        key = self._presigned_key(upload)
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as e:
            if not is_not_found(e):
                raise store_error("S3", "abort upload", e) from e
        self._delete_quietly(key)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except VENDOR_ERRORS as e:
            log.warning("could not delete a temporary upload (%s)", error_code(e) or type(e).__name__)
