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
an anonymous reader (``registry_public_read``) sees only models nobody owns or marked public.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..composition import Services
from ..digests import Digest
from ..errors import (
    BlobNotFound,
    DigestMismatch,
    Forbidden,
    InvalidDigest,
    InvalidName,
    NotFound,
    PayloadTooLarge,
    SkyllamaError,
    Unauthorized,
)
from ..manifest import Manifest
from ..names import DEFAULT_NAMESPACE, ModelName
from ..ports import BlobWriter, StoredManifest
from . import ownership


class RegistryProblem(SkyllamaError):
    """An error with its Docker registry error code (``BLOB_UNKNOWN``, ``MANIFEST_INVALID`` …)."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def docker_error(exc: SkyllamaError) -> tuple[int, dict[str, object]]:
    """``(status, {"errors": [{"code", "message", "detail"}]})`` for any skyllama error."""
    if isinstance(exc, RegistryProblem):
        code = exc.code
    elif isinstance(exc, BlobNotFound):
        code = "BLOB_UNKNOWN"
    elif isinstance(exc, NotFound):
        code = "MANIFEST_UNKNOWN"
    elif isinstance(exc, InvalidDigest | DigestMismatch):
        code = "DIGEST_INVALID"
    elif isinstance(exc, InvalidName):
        code = "NAME_INVALID"
    elif isinstance(exc, Forbidden):
        code = "DENIED"
    elif isinstance(exc, Unauthorized):
        code = "UNAUTHORIZED"
    elif isinstance(exc, PayloadTooLarge):
        code = "SIZE_INVALID"
    else:
        code = "UNSUPPORTED" if exc.status < 500 else "UNKNOWN"
    return exc.status, {"errors": [{"code": code, "message": exc.message, "detail": None}]}


def local_name(svc: Services, namespace: str | None, model: str, tag: str) -> ModelName:
    """The local model a ``/v2/`` repository and tag stand for (validated)."""
    ns = namespace or DEFAULT_NAMESPACE
    return ModelName.parse(f"{svc.settings.registry_serve_host}/{ns}/{model}:{tag}")


def _anonymous_can_read(svc: Services, name: ModelName) -> bool:
    if not svc.settings.auth_enabled or ownership.current() is not None:
        return ownership.can_read(name)
    record = ownership.owner_record(svc.state, name)
    return record is None or bool(record.get("public"))


def find_manifest(svc: Services, namespace: str | None, model: str, reference: str) -> StoredManifest:
    """The stored manifest for a tag (or a ``sha256:`` manifest digest within the repository)."""
    if reference.startswith("sha256"):
        wanted = Digest.parse(reference)
        repo = local_name(svc, namespace, model, "latest")
        for stored in svc.manifests.list():
            same_repo = stored.name.key[:3] == repo.key[:3]
            if same_repo and Digest.of_bytes(stored.data) == wanted and _anonymous_can_read(svc, stored.name):
                return stored
        raise RegistryProblem("manifest unknown", "MANIFEST_UNKNOWN", 404)
    name = local_name(svc, namespace, model, reference)
    found = svc.manifests.get(name)
    if found is None or not _anonymous_can_read(svc, found.name):
        raise RegistryProblem("manifest unknown", "MANIFEST_UNKNOWN", 404)
    return found


def blob_readable(svc: Services, digest: Digest) -> int | None:
    """The blob's size when it exists and the caller may know of it, else ``None``."""
    size = svc.blobs.size(digest)
    if size is None:
        return None
    if not svc.settings.auth_enabled or ownership.current() is not None:
        return size if ownership.blob_visible(digest) else None
    for stored in svc.manifests.list():
        try:
            if digest in Manifest.parse(stored.data).blobs() and _anonymous_can_read(svc, stored.name):
                return size
        except SkyllamaError:
            continue
    return None


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


def put_manifest(svc: Services, namespace: str | None, model: str, tag: str, data: bytes) -> Digest:
    """Validate and store a pushed manifest; every referenced blob must exist with its size."""
    if tag.startswith("sha256"):
        raise RegistryProblem("manifests are pushed by tag", "TAG_INVALID", 400)
    name = local_name(svc, namespace, model, tag)
    try:
        manifest = Manifest.parse(data)
    except SkyllamaError as e:
        raise RegistryProblem(e.message, "MANIFEST_INVALID", 400) from e
    for layer in (manifest.config, *manifest.layers):
        size = blob_readable(svc, layer.digest)
        if size is None:
            raise RegistryProblem(f"blob unknown to registry: {layer.digest}", "MANIFEST_BLOB_UNKNOWN", 400)
        if size != layer.size:
            raise RegistryProblem(f"size of {layer.digest} does not match", "MANIFEST_INVALID", 400)
    ownership.check_write(name)
    svc.manifests.put(name, data)
    ownership.claim(name)
    return Digest.of_bytes(data)


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

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.sessions: dict[str, UploadSession] = {}
        self._guard = threading.Lock()

    def open(self, repo: tuple[str, str]) -> UploadSession:
        self.expire()
        session = UploadSession(str(uuid.uuid4()), repo, self.svc.blobs.writer(None), self.svc.clock.now())
        with self._guard:
            self.sessions[session.id] = session
        return session

    def get(self, upload_id: str, repo: tuple[str, str]) -> UploadSession:
        self.expire()
        with self._guard:
            session = self.sessions.get(upload_id)
        if session is None or session.repo != repo:
            raise RegistryProblem("blob upload unknown to registry", "BLOB_UPLOAD_UNKNOWN", 404)
        session.touched = self.svc.clock.now()
        return session

    def close(self, session: UploadSession, *, abort: bool) -> None:
        with self._guard:
            self.sessions.pop(session.id, None)
        if abort:
            session.writer.abort()

    def expire(self) -> int:
        """Abort sessions idle past the TTL (also called on every open/get)."""
        cutoff = self.svc.clock.now() - self.svc.settings.registry_upload_ttl
        with self._guard:
            stale = [s for s in self.sessions.values() if s.touched < cutoff and not s.lock.locked()]
            for s in stale:
                del self.sessions[s.id]
        for s in stale:
            s.writer.abort()
        return len(stale)


def sessions_of(svc: Services) -> UploadSessions:
    sessions = svc.extras.get("registry_uploads")
    if sessions is None:
        sessions = svc.extras["registry_uploads"] = UploadSessions(svc)
    return sessions
