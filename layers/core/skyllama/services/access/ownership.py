"""Who may read and change which models and blobs, when API keys are on (T-05, T-08).

Every check takes the caller explicitly (``caller``: the request's :class:`Principal`, or
``None`` when auth is off, which allows everything and records nothing): a service that reads a
model cannot forget to say for whom. The catalogue, create, pull, push, the blob routes and the
registry call the methods here.

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
from typing import Any

from ...digests import Digest
from ...errors import DigestMismatch, Forbidden, ModelNotFound, SkyllamaError
from ...manifest import Manifest
from ...names import DEFAULT_HOST, DEFAULT_NAMESPACE, ModelName
from ...ports import BlobWriter, ManifestStore, StateStore
from .keys import Principal

OWNER_KIND = "owner"
BLOB_KIND = "blob_owner"

Caller = Principal | None
"""Who a request acts for: a key's principal, or ``None`` when auth is off (everything allowed)."""

PUBLIC_READER = Principal(owner="", key_id="public", scopes=frozenset())
"""An anonymous reader of a registry with ``registry_public_read``: sees only unowned and public models."""


def _restricted(caller: Caller) -> Principal | None:
    """The caller when checks apply (a non-admin key); ``None`` means allow."""
    return None if caller is None or caller.is_admin else caller


def _key(name: ModelName) -> str:
    return str(name).lower()


def _readable(record: dict[str, Any] | None, owner: str) -> bool:
    return record is None or bool(record.get("public")) or str(record.get("owner", "")).lower() == owner.lower()


class Ownership:
    """The ownership rules over the ``owner``/``blob_owner`` records (see the module docstring)."""

    def __init__(self, state: StateStore, manifests: ManifestStore) -> None:
        self.state = state
        self.manifests = manifests

    def owner_record(self, name: ModelName) -> dict[str, Any] | None:
        """The ``owner`` record of a model, or ``None`` for an unowned (public) one."""
        return self.state.get(OWNER_KIND, _key(name))

    def can_read(self, caller: Caller, name: ModelName) -> bool:
        """Whether ``caller`` may see the model called ``name``."""
        restricted = _restricted(caller)
        return restricted is None or _readable(self.owner_record(name), restricted.owner)

    def check_read(self, caller: Caller, name: ModelName, message: str) -> None:
        """Raise :class:`ModelNotFound` with ``message`` (the caller's usual 404) when unreadable."""
        if not self.can_read(caller, name):
            raise ModelNotFound(message)

    def visible(self, caller: Caller, names: Iterable[ModelName]) -> set[tuple[str, str, str, str]]:
        """The keys (``ModelName.key``) of those of ``names`` that ``caller`` may read."""
        names = list(names)
        restricted = _restricted(caller)
        if restricted is None:
            return {n.key for n in names}
        records = dict(self.state.query(OWNER_KIND))
        return {n.key for n in names if _readable(records.get(_key(n)), restricted.owner)}

    def filter_visible(self, caller: Caller, entries: list[dict[str, Any]], field: str = "model") -> list[dict[str, Any]]:
        """Those of ``entries`` (``/api/ps`` rows, ``/v1/models`` rows) naming a model ``caller`` may read."""
        if _restricted(caller) is None:
            return entries
        named = []
        for entry in entries:
            try:
                named.append((ModelName.parse(str(entry.get(field, ""))), entry))
            except SkyllamaError:
                continue
        readable = self.visible(caller, (name for name, _entry in named))
        return [entry for name, entry in named if name.key in readable]

    def check_write(self, caller: Caller, name: ModelName) -> None:
        """Refuse (403) a create/copy/pull into a name ``caller`` may not write."""
        restricted = _restricted(caller)
        if restricted is None:
            return
        owner = restricted.owner
        namespace = name.namespace.lower()
        if name.host.lower() == DEFAULT_HOST and namespace not in (DEFAULT_NAMESPACE, owner.lower()):
            raise Forbidden(f"forbidden: namespace '{name.namespace}' belongs to another owner")
        record = self.owner_record(name)
        if record is not None:
            if str(record.get("owner", "")).lower() != owner.lower():
                raise Forbidden(f"forbidden: model '{name.display()}' belongs to another owner")
        elif self.manifests.get(name) is not None:
            raise Forbidden(f"forbidden: model '{name.display()}' can only be changed by an admin")

    def check_delete(self, caller: Caller, name: ModelName, message: str) -> None:
        """404 (``message``) for a model ``caller`` cannot see, 403 for one it sees but does not own."""
        restricted = _restricted(caller)
        if restricted is None:
            return
        record = self.owner_record(name)
        if not _readable(record, restricted.owner):
            raise ModelNotFound(message)
        if record is None or str(record.get("owner", "")).lower() != restricted.owner.lower():
            raise Forbidden(f"forbidden: model '{name.display()}' can only be deleted by its owner")

    def check_push(self, caller: Caller, name: ModelName, message: str) -> None:
        """Only the owner (or an admin) may push a model (T-08); 404 when it is not even visible."""
        self.check_read(caller, name, message)
        restricted = _restricted(caller)
        if restricted is None:
            return
        record = self.owner_record(name)
        if record is None or str(record.get("owner", "")).lower() != restricted.owner.lower():
            raise Forbidden(f"forbidden: model '{name.display()}' can only be pushed by its owner")

    def claim(self, caller: Caller, name: ModelName) -> None:
        """Record ``caller`` as the owner of ``name`` (after a create, copy or pull)."""
        if caller is None:
            return
        self.state.put(OWNER_KIND, _key(name), {"owner": caller.owner, "name": str(name),
                                                "public": False, "key_id": caller.key_id})

    def forget(self, caller: Caller, name: ModelName) -> None:
        """Drop the owner record of a deleted model."""
        if caller is not None:
            self.state.delete(OWNER_KIND, _key(name))

    def blob_visible(self, caller: Caller, digest: Digest) -> bool:
        """Whether ``caller`` may know that the blob exists (the caller of this checks it does)."""
        restricted = _restricted(caller)
        if restricted is None:
            return True
        owner = restricted.owner.lower()
        uploaded = self.state.get(BLOB_KIND, digest.hex) or {}
        if owner and owner in (o.lower() for o in uploaded.get("owners", [])):
            return True
        records = dict(self.state.query(OWNER_KIND))
        for stored in self.manifests.list():
            if not _readable(records.get(_key(stored.name)), owner):
                continue
            try:
                if digest in Manifest.parse(stored.data).blobs():
                    return True
            except SkyllamaError:
                continue
        return False

    def record_upload(self, caller: Caller, digest: Digest) -> None:
        """Remember that ``caller``'s owner uploaded (or proved to hold) this blob."""
        restricted = _restricted(caller)
        if restricted is None:
            return
        item = self.state.get(BLOB_KIND, digest.hex) or {"owners": []}
        owners = list(item.get("owners", []))
        if restricted.owner not in owners:
            owners.append(restricted.owner)
            self.state.put(BLOB_KIND, digest.hex, {"owners": owners})


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
