"""API keys: random secrets shown once, stored only as their sha256, checked in constant time.

A key is a record of kind ``key`` in the :class:`~skyllama.ports.StateStore`, stored under the
sha256 of its secret (so a lookup never needs the secret itself)::

    {"id": "key_…", "name": …, "owner": …, "scopes": [...], "quotas": {"rpm": n, "tokens_per_day": n},
     "created_at": RFC3339, "revoked": false, "hash": "<sha256 hex>"}

Verified keys are cached in-process for ``auth_cache_seconds`` (default 5): a key revoked by
another process (``skyllama keys revoke``) stops working within that time; one revoked through
:meth:`ApiKeys.revoke_key` in this process stops at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...errors import BadRequest, NotFound
from ...ports import Clock, StateStore

KIND = "key"
SECRET_PREFIX = "sk-sky-"
SCOPES = ("inference", "manage", "admin")
_OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$")
_MAX_SECRET = 256


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the key's owner, the key's id, its scopes and quotas."""

    owner: str
    key_id: str
    scopes: frozenset[str]
    quotas: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    def has(self, scope: str) -> bool:
        """``admin`` implies every scope."""
        return scope in self.scopes or "admin" in self.scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


def hash_secret(secret: str) -> str:
    """The sha256 hex digest of a secret: what is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _principal(item: dict[str, Any]) -> Principal:
    quotas = {k: int(v) for k, v in (item.get("quotas") or {}).items() if v}
    return Principal(owner=str(item["owner"]), key_id=str(item["id"]),
                     scopes=frozenset(item.get("scopes") or ()), quotas=quotas)


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """A key record without its hash, for listings."""
    return {k: v for k, v in item.items() if k != "hash"}


class ApiKeys:
    """Create, list, revoke and verify API keys kept in a state store."""

    def __init__(self, state: StateStore, *, clock: Clock | None = None, cache_seconds: float = 5.0) -> None:
        self.state = state
        self.clock = clock or Clock()
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def create_key(self, *, name: str, owner: str, scopes: list[str] | tuple[str, ...],
                   rpm: int | None = None, tokens_per_day: int | None = None) -> tuple[str, dict[str, Any]]:
        """Make a key; returns ``(secret, record)``. The secret is not kept anywhere: show it once."""
        if not _OWNER.match(owner or ""):
            raise BadRequest("owner must be 1-80 letters, digits, '_' or '-'")
        if not name or len(name) > 200:
            raise BadRequest("a key needs a name (up to 200 characters)")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise BadRequest(f"scopes must be some of {', '.join(SCOPES)}")
        for label, value in (("rpm", rpm), ("tokens_per_day", tokens_per_day)):
            if value is not None and value < 1:
                raise BadRequest(f"{label} must be a positive number")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        digest = hash_secret(secret)
        record: dict[str, Any] = {
            "id": "key_" + secrets.token_hex(8),
            "name": name,
            "owner": owner,
            "scopes": [s for s in SCOPES if s in scopes],
            "quotas": {k: v for k, v in (("rpm", rpm), ("tokens_per_day", tokens_per_day)) if v},
            "created_at": datetime.fromtimestamp(self.clock.now(), UTC).isoformat().replace("+00:00", "Z"),
            "revoked": False,
            "hash": digest,
        }
        if not self.state.put(KIND, digest, record, if_absent=True):  # a 256-bit collision: never
            raise BadRequest("could not create a unique key, try again")
        return secret, public_view(record)

    def list_keys(self) -> list[dict[str, Any]]:
        """Every key (revoked ones too), oldest first, without hashes."""
        items = [public_view(item) for _key, item in self.state.query(KIND)]
        return sorted(items, key=lambda item: (item.get("created_at", ""), item.get("id", "")))

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        """The record of the key with this id (without its hash), or ``None``."""
        return next((public_view(item) for _k, item in self.state.query(KIND) if item.get("id") == key_id), None)

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Mark the key revoked (kept for the usage history); raises NotFound for an unknown id."""
        for key, item in self.state.query(KIND):
            if item.get("id") == key_id:
                item["revoked"] = True
                self.state.put(KIND, key, item)
                with self._lock:
                    self._cache.pop(key, None)
                return public_view(item)
        raise NotFound(f"key '{key_id}' not found")

    def authenticate(self, secret: str | None) -> Principal | None:
        """The principal of a live key, or ``None`` for a missing, unknown or revoked one."""
        if not secret or len(secret) > _MAX_SECRET:
            return None
        digest = hash_secret(secret)
        now = self.clock.now()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        item = self.state.get(KIND, digest)
        principal = None
        if item is not None and hmac.compare_digest(str(item.get("hash", "")), digest) and not item.get("revoked"):
            principal = _principal(item)
        if self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self.cache_seconds, principal)
        return principal
