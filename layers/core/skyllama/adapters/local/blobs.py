"""Blobs in a local folder, exactly where Ollama keeps them: ``<root>/blobs/sha256-<hex>``.

Bytes go to a temporary file in the same folder while they are hashed, then the file is renamed
to its final name only when the digest checks out: a crash leaves at most a temporary file, which
:meth:`LocalBlobStore.list` never reports and :meth:`sweep_partials` removes (T-37): only files
older than its ``older_than`` (their mtime, which every write refreshes) and never one that a
writer of this store still holds open, however long that writer has been idle.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ...digests import Digest
from ...errors import BlobNotFound, DigestMismatch
from ...ports import BlobStore, BlobWriter

_BLOB_NAME = re.compile(r"sha256-([0-9a-f]{64})")
_PARTIAL_PREFIX = ".partial-"


class LocalBlobWriter(BlobWriter):
    def __init__(self, folder: Path, expected: Digest | None) -> None:
        self._folder = folder
        self._expected = expected
        self._tmp = folder / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        self._file: BinaryIO | None = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self._written = 0

    @property
    def written(self) -> int:
        return self._written

    @property
    def temp_name(self) -> str:
        return self._tmp.name

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._file.write(chunk)
        self._hash.update(chunk)
        self._written += len(chunk)

    def commit(self) -> Digest:
        assert self._file is not None, "commit after commit or abort"
        actual = Digest(self._hash.hexdigest())
        if self._expected is not None and actual != self._expected:
            self.abort()
            raise DigestMismatch(f'digest mismatch, expected "{self._expected}", got "{actual}"')
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._tmp, self._folder / actual.filename)
        return actual

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "blobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writers: weakref.WeakSet[LocalBlobWriter] = weakref.WeakSet()
        self._writers_lock = threading.Lock()  # writers start in worker threads while a sweep lists them

    def _path(self, digest: Digest) -> Path:
        return self.folder / digest.filename

    def size(self, digest: Digest) -> int | None:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def writer(self, expected: Digest | None = None) -> BlobWriter:
        writer = LocalBlobWriter(self.folder, expected)
        with self._writers_lock:
            self._writers.add(writer)  # weak: a writer dropped without commit/abort leaves a sweepable file
        return writer

    def open(self, digest: Digest, offset: int = 0) -> BinaryIO:
        try:
            f = open(self._path(digest), "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError as e:
            raise BlobNotFound(f'blob "{digest}" not found') from e
        if offset:
            f.seek(offset)
        return f

    def local_path(self, digest: Digest) -> Path:
        path = self._path(digest)
        if not path.is_file():
            raise BlobNotFound(f'blob "{digest}" not found')
        return path

    def delete(self, digest: Digest) -> bool:
        try:
            self._path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def list(self) -> Iterator[Digest]:
        for entry in os.scandir(self.folder):
            m = _BLOB_NAME.fullmatch(entry.name)
            if m and entry.is_file():
                yield Digest(m.group(1))

    def sweep_partials(self, older_than: float = 0.0) -> int:
        """Remove temporary files left by crashed writers: older than ``older_than`` seconds and
        not held by a writer that is still open in this process."""
        with self._writers_lock:
            live = {w.temp_name for w in list(self._writers) if w.is_open}
        removed = 0
        for entry in os.scandir(self.folder):
            if not entry.name.startswith(_PARTIAL_PREFIX) or entry.name in live:
                continue
            try:
                if time.time() - entry.stat().st_mtime < older_than:
                    continue
                Path(entry.path).unlink()
            except FileNotFoundError:
                continue  # committed or aborted meanwhile
            removed += 1
        return removed
