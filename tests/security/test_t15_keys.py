"""T-15: key handling. Hashed at rest, constant-time comparison, revocation within the cache
TTL, and no cross-route policy-cache breakage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from skyllama.adapters.local.sqlite_state import SqliteStateStore
from skyllama.composition import build_runtime
from skyllama.errors import BadRequest, NotFound
from skyllama.http.app import create_app
from skyllama.services.access import keys as auth
from skyllama.services.access.keys import ApiKeys
from skyllama.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


def test_secret_is_never_stored(store: SqliteStateStore, tmp_path: Path) -> None:
    secret, record = ApiKeys(store).create_key(name="ci", owner="alice", scopes=["inference"])
    assert secret.startswith("sk-sky-") and len(secret) >= 7 + 43
    assert "hash" not in record and secret not in str(record)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    assert secret.encode() not in raw and secret[7:].encode() not in raw
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw
    assert all("hash" not in item for item in ApiKeys(store).list_keys())


def test_constant_time_comparison_is_used(store: SqliteStateStore) -> None:
    keys = ApiKeys(store, cache_seconds=0)
    secret, record = keys.create_key(name="ci", owner="alice", scopes=["inference", "manage"], rpm=3)
    with mock.patch.object(auth.hmac, "compare_digest", wraps=auth.hmac.compare_digest) as compare:
        principal = keys.authenticate(secret)
    assert compare.call_count == 1
    assert principal is not None and principal.owner == "alice" and principal.key_id == record["id"]
    assert principal.scopes == {"inference", "manage"} and principal.quotas == {"rpm": 3}
    with mock.patch.object(auth.hmac, "compare_digest", return_value=False):
        assert keys.authenticate(secret) is None  # the stored hash must compare equal, not just be found


@pytest.mark.parametrize("bad", [None, "", "sk-sky-", "x" * 5000, "sk-sky-" + "A" * 43])
def test_bad_secrets_are_refused(store: SqliteStateStore, bad: str | None) -> None:
    ApiKeys(store).create_key(name="ci", owner="alice", scopes=["inference"])
    assert ApiKeys(store).authenticate(bad) is None


def test_revocation_is_honoured_within_the_cache_ttl(store: SqliteStateStore) -> None:
    clock = FakeClock()
    server = ApiKeys(store, clock=clock, cache_seconds=5)
    secret, record = server.create_key(name="ci", owner="alice", scopes=["inference"])
    assert server.authenticate(secret) is not None
    ApiKeys(store, clock=clock).revoke_key(record["id"])  # another process: `skyllama keys revoke`
    clock.t += 4
    assert server.authenticate(secret) is not None  # still cached, within the TTL
    clock.t += 1.5
    assert server.authenticate(secret) is None
    assert [k["revoked"] for k in server.list_keys()] == [True]


def test_revocation_in_process_is_immediate(store: SqliteStateStore) -> None:
    keys = ApiKeys(store, cache_seconds=60)
    secret, record = keys.create_key(name="ci", owner="alice", scopes=["inference"])
    assert keys.authenticate(secret) is not None
    keys.revoke_key(record["id"])
    assert keys.authenticate(secret) is None
    with pytest.raises(NotFound):
        keys.revoke_key("key_nope")


@pytest.mark.parametrize("kwargs", [
    {"owner": "../etc", "scopes": ["inference"]}, {"owner": "", "scopes": ["inference"]},
    {"owner": "a", "scopes": []}, {"owner": "a", "scopes": ["root"]},
    {"owner": "a", "scopes": ["inference"], "rpm": 0},
])
def test_key_fields_are_validated(store: SqliteStateStore, kwargs: dict) -> None:
    with pytest.raises(BadRequest):
        ApiKeys(store).create_key(name="x", **kwargs)


def test_no_cross_route_policy_cache_breakage(tmp_path: Path) -> None:
    """A key cached after a route it may use is still refused on a route it may not, and the reverse."""
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db", auth="on")
    runtime = build_runtime(settings, inference=False)
    app = create_app(runtime)
    keys = runtime.keys
    inf, _ = keys.create_key(name="i", owner="alice", scopes=["inference"])
    man, _ = keys.create_key(name="m", owner="alice", scopes=["manage"])
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        for _ in range(2):
            assert c.get("/api/tags", headers={"Authorization": f"Bearer {inf}"}).status_code == 200
            assert c.post("/api/copy", json={"source": "a", "destination": "b"},
                          headers={"Authorization": f"Bearer {inf}"}).status_code == 403
            assert c.post("/api/copy", json={"source": "a", "destination": "b"},
                          headers={"Authorization": f"Bearer {man}"}).status_code == 404
            assert c.get("/api/tags", headers={"Authorization": f"Bearer {man}"}).status_code == 403
        assert c.get("/api/tags", headers={"Authorization": f"bearer {inf}"}).status_code == 200
        assert c.get("/api/tags", headers={"x-api-key": inf}).status_code == 200
    runtime.close()
