"""The ports: small interfaces between the services and the storage behind them.

The embedded adapters (``adapters/local``) keep blobs and manifests in a folder laid out as
Ollama lays it out, and state in SQLite; the AWS adapters (``adapters/aws``) use S3, DynamoDB and
SQS. One contract test suite runs against every adapter, so both behave the same.
"""

from __future__ import annotations

import abc
import builtins
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from .digests import Digest
from .errors import BadRequest
from .names import ModelName

CHUNK = 1 << 20
PULL_CHECKPOINT_TTL = 7 * 86400.0  # an unfinished pull resumes for this long after its last part was written


class Clock:
    """Wall-clock seconds since the epoch; tests pass a fake to move time."""

    def now(self) -> float:
        return time.time()


class BlobWriter(abc.ABC):
    """Receives a blob's bytes in order and commits them under their digest, or nothing.

    Use as a context manager: leaving the block with an exception aborts the write, so no
    half-written blob ever appears under a final name.
    """

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None:
        """Append bytes (hashing as they pass)."""

    @abc.abstractmethod
    def commit(self) -> Digest:
        """Verify the sha256 (when an expected digest was given) and publish the blob.

        Raises :class:`~skyllama.errors.DigestMismatch` and keeps nothing on a mismatch.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything written so far."""

    @property
    @abc.abstractmethod
    def written(self) -> int:
        """Bytes received so far."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


class BlobStore(abc.ABC):
    """Content-addressed blobs under ``blobs/sha256-<hex>``."""

    @abc.abstractmethod
    def size(self, digest: Digest) -> int | None:
        """The blob's size in bytes, or ``None`` when it does not exist."""

    def exists(self, digest: Digest) -> bool:
        return self.size(digest) is not None

    @abc.abstractmethod
    def writer(self, expected: Digest | None = None) -> BlobWriter:
        """A writer for a new blob; with ``expected`` the bytes must hash to it."""

    @abc.abstractmethod
    def open(self, digest: Digest, offset: int = 0) -> BinaryIO:
        """A binary stream of the blob from ``offset``. Raises BlobNotFound."""

    @abc.abstractmethod
    def local_path(self, digest: Digest) -> Path:
        """A local file holding the blob (the S3 adapter downloads into its cache)."""

    @abc.abstractmethod
    def delete(self, digest: Digest) -> bool:
        """Remove the blob; ``False`` when it was not there."""

    @abc.abstractmethod
    def list(self) -> Iterator[Digest]:
        """Every committed blob (never temporary or partial files)."""

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path, expected: Digest | None = None) -> Digest:
        with self.writer(expected) as w, open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                w.write(chunk)
            return w.commit()

    def read_bytes(self, digest: Digest, limit: int = 16 << 20) -> bytes:
        """A small blob's whole content (templates, params); refuses anything over ``limit``."""
        size = self.size(digest)
        if size is not None and size > limit:
            raise BadRequest(f"blob {digest} is too large to read whole")
        with self.open(digest) as f:
            return f.read(limit)


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as stored: the name it is stored under, its bytes, and when it changed."""

    name: ModelName
    data: bytes
    modified_at: datetime


class ManifestStore(abc.ABC):
    """Manifests under ``manifests/<host>/<namespace>/<model>/<tag>``; names match case-insensitively."""

    @abc.abstractmethod
    def get(self, name: ModelName) -> StoredManifest | None:
        """The manifest stored under ``name`` (compared case-insensitively), or ``None``."""

    @abc.abstractmethod
    def put(self, name: ModelName, data: bytes) -> None:
        """Write atomically; an existing manifest whose name differs only in case is replaced."""

    @abc.abstractmethod
    def delete(self, name: ModelName) -> bool:
        """Remove the manifest; ``False`` when there was none."""

    @abc.abstractmethod
    def list(self) -> list[StoredManifest]:
        """Every readable manifest; unreadable entries are skipped (and logged) so one bad
        item never hides the others."""

    def problems(self) -> builtins.list[str]:
        """Keys of entries :meth:`list` had to skip (garbage collection refuses to run if any)."""
        return []


class StateStore(abc.ABC):
    """Small records grouped by ``kind`` (loaded instances, jobs, keys, usage).

    Items may carry ``expires_at`` (epoch seconds); an item past it is treated as absent on
    every read, since DynamoDB deletes expired items lazily.
    """

    @abc.abstractmethod
    def put(
        self,
        kind: str,
        key: str,
        item: dict[str, Any],
        *,
        expires_at: float | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Store ``item``; with ``if_absent`` only when no live item exists (returns False then)."""

    @abc.abstractmethod
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The live item, or ``None`` (missing or expired)."""

    @abc.abstractmethod
    def delete(self, kind: str, key: str) -> bool:
        """Remove the item; ``False`` when there was none."""

    @abc.abstractmethod
    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """Every live ``(key, item)`` of ``kind`` whose key starts with ``prefix``, by key."""

    @abc.abstractmethod
    def increment(self, kind: str, key: str, field: str, amount: float, *, expires_at: float | None = None) -> float:
        """Atomically add ``amount`` to a numeric field (created at 0) and return the new value."""


MAX_JOB_BYTES = 256 * 1024  # SQS's classic message limit; keep jobs small (ids, not payloads)


def encode_job(job: dict[str, Any]) -> str:
    """A job as compact JSON, as every queue sends it; refuses jobs that are not JSON objects or
    are too large (:class:`BadRequest`)."""
    if not isinstance(job, dict):
        raise BadRequest("a job must be a JSON object")
    try:
        body = json.dumps(job, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadRequest("a job must be plain JSON") from e
    if len(body.encode()) > MAX_JOB_BYTES:
        raise BadRequest("job too large")
    return body


class JobQueue(abc.ABC):
    """Where long work (create, pull, push) is sent to run outside the request."""

    @abc.abstractmethod
    def send(self, job: dict[str, Any]) -> None:
        """Queue a job; delivery is at least once, so jobs must be idempotent."""


class PartStore(abc.ABC):
    """Where the parts of an unfinished download are kept.

    ``min_part`` is the smallest part the store can take (S3 multipart: 5 MiB but the last);
    :meth:`scoped` gives a store whose parts belong to one owner (a worker job), so two jobs
    fetching the same blob never write into one another's parts.
    """

    min_part = 1

    def scoped(self, scope: str) -> PartStore:
        return self

    def begin(self, digest: Digest, parts: list[list[int]]) -> None:
        """The plan ``[[start, end), ...]`` of ``digest`` is (re)loaded; sizes now reflect it."""
        return None  # local part files need no preparation

    @abc.abstractmethod
    def size(self, digest: Digest, n: int) -> int:
        """Bytes of part ``n`` received so far."""

    @abc.abstractmethod
    def append(self, digest: Digest, n: int, data: bytes) -> None:
        """Add bytes to the end of part ``n``."""

    @abc.abstractmethod
    def truncate(self, digest: Digest, n: int) -> None:
        """Empty part ``n``."""

    @abc.abstractmethod
    def read(self, digest: Digest, n: int) -> Any:
        """A binary stream of part ``n`` (a context manager)."""

    @abc.abstractmethod
    def clear(self, digest: Digest) -> None:
        """Remove every part of ``digest``."""

    def verify(self, digest: Digest, count: int) -> bool:
        """Whether the ``count`` parts, in order, hash to ``digest``."""
        h = hashlib.sha256()
        for n in range(count):
            with self.read(digest, n) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        return h.hexdigest() == digest.hex

    def commit(self, digest: Digest, count: int, blobs: BlobStore) -> None:
        """Publish the verified parts through the blob store's writer (which re-verifies)."""
        with blobs.writer(digest) as writer:
            for n in range(count):
                with self.read(digest, n) as f:
                    while chunk := f.read(CHUNK):
                        writer.write(chunk)
            writer.commit()
