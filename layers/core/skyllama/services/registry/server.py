"""The registry side of ``/v2/`` (Docker distribution API v2, as Ollama's clients speak it).

Names: a model name's host *is* the registry, so ``/v2/<ns>/<model>/manifests/<tag>`` carries no
host. The server maps it to the local model ``<registry_serve_host>/<ns>/<model>:<tag>``
(default host ``registry.ollama.ai``, so a push of ``127.0.0.1:PORT/ns/m:t`` to this server shows
up here as ``ns/m:t``, and a pull of ``127.0.0.1:PORT/ns/m:t`` from it serves the local
``ns/m:t``; the puller stores it under host ``127.0.0.1:PORT``). ``/v2/<model>/...`` means the
``library`` namespace.

Uploads: ``POST …/blobs/uploads/`` opens a session whose bytes go straight into a
:class:`~skyllama.ports.BlobWriter` (a temporary blob) while being hashed; nothing appears under
a final blob name until ``PUT ?digest=`` proves the sha256. Sessions idle longer than
``registry_upload_ttl`` are aborted.

Visibility: with API keys on, a caller sees only models and blobs :mod:`ownership` lets it see;
an anonymous reader (``registry_public_read``, ``ownership.PUBLIC_READER``) sees only models
nobody owns or marked public.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ...digests import Digest
from ...errors import (
    SkyllamaError,
)
from ...manifest import Manifest
from ...names import DEFAULT_NAMESPACE, ModelName
from ...ports import BlobStore, BlobWriter, Clock, ManifestStore, StoredManifest
from ...settings import Settings
from ..access.ownership import Caller, Ownership


class RegistryProblem(SkyllamaError):
    """An error with its Docker registry error code (``BLOB_UNKNOWN``, ``MANIFEST_INVALID`` …)."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → inclusive ``(start, end)``; ``None`` for no
    header; :class:`RegistryProblem` 416 when unsatisfiable or malformed."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    bad = RegistryProblem("requested range not satisfiable", "RANGE_INVALID", 416)
    if unit.strip().lower() != "bytes" or "," in spec:
        raise bad
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or \
            (last and not last.isdigit()):
        raise bad
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise bad
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise bad
    return start, end


@dataclass
class UploadSession:
    """One blob upload in progress: a temporary blob plus our own running sha256."""

    id: str
    repo: tuple[str, str]
    writer: BlobWriter
    touched: float
    offset: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def write(self, chunk: bytes) -> None:
        self.writer.write(chunk)
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def finish(self, digest: Digest) -> Digest:
        """Commit when the bytes hash to ``digest``; otherwise keep nothing."""
        actual = Digest(self.hasher.hexdigest())
        if actual != digest:
            self.writer.abort()
            raise RegistryProblem(f'digest mismatch, expected "{digest}", got "{actual}"', "DIGEST_INVALID", 400)
        self.writer.commit()
        return digest


class UploadSessions:
    """The open upload sessions of one process; idle ones expire after ``ttl`` seconds."""

    def __init__(self, blobs: BlobStore, clock: Clock, ttl: float) -> None:
        self.blobs = blobs
        self.clock = clock
        self.ttl = ttl
        self.sessions: dict[str, UploadSession] = {}
        self._guard = threading.Lock()

    def open(self, repo: tuple[str, str]) -> UploadSession:
        self.expire()
        session = UploadSession(str(uuid.uuid4()), repo, self.blobs.writer(None), self.clock.now())
        with self._guard:
            self.sessions[session.id] = session
        return session

    def get(self, upload_id: str, repo: tuple[str, str]) -> UploadSession:
        self.expire()
        with self._guard:
            session = self.sessions.get(upload_id)
        if session is None or session.repo != repo:
            raise RegistryProblem("blob upload unknown to registry", "BLOB_UPLOAD_UNKNOWN", 404)
        session.touched = self.clock.now()
        return session

    def close(self, session: UploadSession, *, abort: bool) -> None:
        with self._guard:
            self.sessions.pop(session.id, None)
        if abort:
            session.writer.abort()

    def expire(self) -> int:
        """Abort sessions idle past the TTL (also called on every open/get)."""
        cutoff = self.clock.now() - self.ttl
        with self._guard:
            stale = [s for s in self.sessions.values() if s.touched < cutoff and not s.lock.locked()]
            for s in stale:
                del self.sessions[s.id]
        for s in stale:
            s.writer.abort()
        return len(stale)


class RegistryServer:
    """The ``/v2/`` registry over this process's stores; every read and write names its caller
    (``ownership.PUBLIC_READER`` for an anonymous reader when ``registry_public_read`` is on)."""

    def __init__(self, settings: Settings, blobs: BlobStore, manifests: ManifestStore, ownership: Ownership,
                 sessions: UploadSessions) -> None:
        self.settings = settings
        self.blobs = blobs
        self.manifests = manifests
        self.ownership = ownership
        self.sessions = sessions

    def local_name(self, namespace: str | None, model: str, tag: str) -> ModelName:
        """The local model a ``/v2/`` repository and tag stand for (validated)."""
        ns = namespace or DEFAULT_NAMESPACE
        return ModelName.parse(f"{self.settings.registry_serve_host}/{ns}/{model}:{tag}")

    def find_manifest(self, caller: Caller, namespace: str | None, model: str, reference: str) -> StoredManifest:
        """The stored manifest for a tag (or a ``sha256:`` manifest digest within the repository)."""
        if reference.startswith("sha256"):
            wanted = Digest.parse(reference)
            repo = self.local_name(namespace, model, "latest")
            for stored in self.manifests.list():
                same_repo = stored.name.key[:3] == repo.key[:3]
                if same_repo and Digest.of_bytes(stored.data) == wanted and \
                        self.ownership.can_read(caller, stored.name):
                    return stored
            raise RegistryProblem("manifest unknown", "MANIFEST_UNKNOWN", 404)
        name = self.local_name(namespace, model, reference)
        found = self.manifests.get(name)
        if found is None or not self.ownership.can_read(caller, found.name):
            raise RegistryProblem("manifest unknown", "MANIFEST_UNKNOWN", 404)
        return found

    def tags(self, caller: Caller, namespace: str | None, model: str) -> tuple[ModelName, list[str]]:
        """The repository's name and the tags ``caller`` may see in it."""
        repo = self.local_name(namespace, model, "latest")
        tags = sorted(s.name.tag for s in self.manifests.list()
                      if s.name.key[:3] == repo.key[:3] and self.ownership.can_read(caller, s.name))
        return repo, tags

    def blob_readable(self, caller: Caller, digest: Digest) -> int | None:
        """The blob's size when it exists and ``caller`` may know of it, else ``None``."""
        size = self.blobs.size(digest)
        if size is None:
            return None
        return size if self.ownership.blob_visible(caller, digest) else None

    def put_manifest(self, caller: Caller, namespace: str | None, model: str, tag: str, data: bytes) -> Digest:
        """Validate and store a pushed manifest; every referenced blob must exist with its size."""
        if tag.startswith("sha256"):
            raise RegistryProblem("manifests are pushed by tag", "TAG_INVALID", 400)
        name = self.local_name(namespace, model, tag)
        try:
            manifest = Manifest.parse(data)
        except SkyllamaError as e:
            raise RegistryProblem(e.message, "MANIFEST_INVALID", 400) from e
        for layer in (manifest.config, *manifest.layers):
            size = self.blob_readable(caller, layer.digest)
            if size is None:
                raise RegistryProblem(f"blob unknown to registry: {layer.digest}", "MANIFEST_BLOB_UNKNOWN", 400)
            if size != layer.size:
                raise RegistryProblem(f"size of {layer.digest} does not match", "MANIFEST_INVALID", 400)
        self.ownership.check_write(caller, name)
        self.manifests.put(name, data)
        self.ownership.claim(caller, name)
        return Digest.of_bytes(data)


