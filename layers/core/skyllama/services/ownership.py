"""Who may read and change which models and blobs, when API keys are on (T-05, T-08).

The auth middleware binds an :class:`Access` (the request's principal plus the stores) to the
request's context; the catalogue, the blob route and the create plan call the functions here.
With auth off nothing is bound and every function allows everything, so embedded use is
unchanged.

Rules:

- A model created, copied or pulled by a key belongs to the key's owner: a record of kind
  ``owner`` keyed by the lower-cased full model name holds ``{"owner": …, "public": false}``.
- A model without such a record (installed by the operator, e.g. ``serve --demo``) is public:
  every key may read it, only ``admin`` may change or delete it.
- Another owner's private model does not exist for you: show, generate, copy from, delete, push
  all answer 404 exactly as for a missing model, and ``/api/tags`` leaves it out.
- Writes (create, copy, pull into a name) by a non-admin key go only to names in the default
  namespace (``library``) or the key owner's own namespace (``<owner>/model``), and never over a
  model that belongs to someone else (403). A name in ``library`` claimed by another owner is
  therefore refused with 403, which tells the caller the name is taken (not its contents):
  owners who want no such signal use their own namespace.
- A blob is visible to a key when a model it may read references it, or when its owner
  uploaded it (record kind ``blob_owner``). Anything else answers as absent (404 on HEAD,
  "not found" in create), and an upload of bytes that already exist is read and verified and
  answered 201 as if new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from ..digests import Digest
from ..errors import DigestMismatch, Forbidden, ModelNotFound, SkyllamaError
from ..manifest import Manifest
from ..names import DEFAULT_HOST, DEFAULT_NAMESPACE, ModelName
from ..ports import BlobWriter, ManifestStore, StateStore
from .auth import Principal

OWNER_KIND = "owner"
BLOB_KIND = "blob_owner"


@dataclass(frozen=True)
class Access:
    """The principal a request acts for, with the stores the checks read."""

    principal: Principal
    state: StateStore
    manifests: ManifestStore


_current: ContextVar[Access | None] = ContextVar("skyllama_access", default=None)


def bind(access: Access | None) -> Token[Access | None]:
    """Make ``access`` current for this request (and the threads it starts)."""
    return _current.set(access)


def unbind(token: Token[Access | None]) -> None:
    _current.reset(token)


def current() -> Access | None:
    """The bound access, or ``None`` when auth is off (or outside a request)."""
    return _current.get()


def _restricted() -> Access | None:
    """The bound access when checks apply (a non-admin key); ``None`` means allow."""
    access = _current.get()
    if access is None or access.principal.is_admin:
        return None
    return access


def _key(name: ModelName) -> str:
    return str(name).lower()


def owner_record(state: StateStore, name: ModelName) -> dict[str, Any] | None:
    """The ``owner`` record of a model, or ``None`` for an unowned (public) one."""
    return state.get(OWNER_KIND, _key(name))


def _readable(record: dict[str, Any] | None, owner: str) -> bool:
    return record is None or bool(record.get("public")) or str(record.get("owner", "")).lower() == owner.lower()


def can_read(name: ModelName) -> bool:
    """Whether the current principal may see the model called ``name``."""
    access = _restricted()
    if access is None:
        return True
    return _readable(owner_record(access.state, name), access.principal.owner)


def check_read(name: ModelName, message: str) -> None:
    """Raise :class:`ModelNotFound` with ``message`` (the caller's usual 404) when unreadable."""
    if not can_read(name):
        raise ModelNotFound(message)


def visible(names: Iterable[ModelName]) -> set[tuple[str, str, str, str]]:
    """The keys (``ModelName.key``) of those of ``names`` the current principal may read."""
    names = list(names)
    access = _restricted()
    if access is None:
        return {n.key for n in names}
    records = dict(access.state.query(OWNER_KIND))
    owner = access.principal.owner
    return {n.key for n in names if _readable(records.get(_key(n)), owner)}


def filter_visible(entries: list[dict[str, Any]], field: str = "model") -> list[dict[str, Any]]:
    """Those of ``entries`` (``/api/ps`` rows, ``/v1/models`` rows) naming a model the principal may read."""
    if _restricted() is None:
        return entries
    named = []
    for entry in entries:
        try:
            named.append((ModelName.parse(str(entry.get(field, ""))), entry))
        except SkyllamaError:
            continue
    readable = visible(name for name, _entry in named)
    return [entry for name, entry in named if name.key in readable]


def check_write(name: ModelName) -> None:
    """Refuse (403) a create/copy/pull into a name the current principal may not write."""
    access = _restricted()
    if access is None:
        return
    owner = access.principal.owner
    namespace = name.namespace.lower()
    if name.host.lower() == DEFAULT_HOST and namespace not in (DEFAULT_NAMESPACE, owner.lower()):
        raise Forbidden(f"forbidden: namespace '{name.namespace}' belongs to another owner")
    record = owner_record(access.state, name)
    if record is not None:
        if str(record.get("owner", "")).lower() != owner.lower():
            raise Forbidden(f"forbidden: model '{name.display()}' belongs to another owner")
    elif access.manifests.get(name) is not None:
        raise Forbidden(f"forbidden: model '{name.display()}' can only be changed by an admin")


def check_delete(name: ModelName, message: str) -> None:
    """404 (``message``) for a model the principal cannot see, 403 for one it sees but does not own."""
    access = _restricted()
    if access is None:
        return
    record = owner_record(access.state, name)
    if not _readable(record, access.principal.owner):
        raise ModelNotFound(message)
    if record is None or str(record.get("owner", "")).lower() != access.principal.owner.lower():
        raise Forbidden(f"forbidden: model '{name.display()}' can only be deleted by its owner")


def claim(name: ModelName) -> None:
    """Record the current principal as the owner of ``name`` (after a create, copy or pull)."""
    access = current()
    if access is None:
        return
    access.state.put(OWNER_KIND, _key(name), {"owner": access.principal.owner, "name": str(name),
                                              "public": False, "key_id": access.principal.key_id})


def forget(name: ModelName) -> None:
    """Drop the owner record of a deleted model."""
    access = current()
    if access is not None:
        access.state.delete(OWNER_KIND, _key(name))


def blob_visible(digest: Digest) -> bool:
    """Whether the current principal may know that the blob exists (the caller checks it does)."""
    access = _restricted()
    if access is None:
        return True
    owner = access.principal.owner.lower()
    uploaded = access.state.get(BLOB_KIND, digest.hex) or {}
    if owner in (o.lower() for o in uploaded.get("owners", [])):
        return True
    records = dict(access.state.query(OWNER_KIND))
    for stored in access.manifests.list():
        if not _readable(records.get(_key(stored.name)), owner):
            continue
        try:
            if digest in Manifest.parse(stored.data).blobs():
                return True
        except SkyllamaError:
            continue
    return False


def record_upload(digest: Digest) -> None:
    """Remember that the current principal's owner uploaded (or proved to hold) this blob."""
    access = _restricted()
    if access is None:
        return
    item = access.state.get(BLOB_KIND, digest.hex) or {"owners": []}
    owners = list(item.get("owners", []))
    if access.principal.owner not in owners:
        owners.append(access.principal.owner)
        access.state.put(BLOB_KIND, digest.hex, {"owners": owners})


class _VerifyOnly(BlobWriter):
    """Hashes an upload of bytes that already exist (but are not the caller's to know of) and
    keeps nothing: the caller gets the same 400 or 201 as for a new blob."""

    def __init__(self, expected: Digest) -> None:
        self._expected = expected
        self._hash = hashlib.sha256()
        self._written = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._written += len(chunk)

    def commit(self) -> Digest:
        actual = Digest(self._hash.hexdigest())
        if actual != self._expected:
            raise DigestMismatch(f'digest mismatch, expected "{self._expected}", got "{actual}"')
        return self._expected

    def abort(self) -> None:
        self._hash = hashlib.sha256()

    @property
    def written(self) -> int:
        return self._written


def verifying_writer(digest: Digest) -> BlobWriter:
    """A writer for an existing blob the caller may not see: verify the body, store nothing."""
    return _VerifyOnly(digest)
