"""T-24 TTL laziness: a state item past its ``expires_at`` is absent to every read (get, query,
``put(if_absent)``, delete), on SQLite and on DynamoDB under moto, which (like DynamoDB for up to
days) never deletes expired items itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import TABLE, aws_stores, moto_aws

from skyllama.adapters.local.sqlite_state import SqliteStateStore


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    clock = Clock()
    if request.param == "sqlite":
        s = SqliteStateStore(tmp_path / "s.db", clock=clock)
        yield s, clock, None
        s.close()
        return
    with moto_aws(monkeypatch):
        _s3, _b, _m, state = aws_stores(tmp_path / "cache", clock)
        yield state, clock, state.client


def test_expired_items_are_absent_everywhere(store: Any) -> None:
    state, clock, ddb = store
    state.put("lease", "a", {"owner": "one"}, expires_at=clock.t + 10)
    state.put("lease", "b", {"owner": "two"})
    assert state.get("lease", "a") == {"owner": "one"}
    clock.t += 11
    assert state.get("lease", "a") is None
    assert [k for k, _ in state.query("lease")] == ["b"]
    if ddb is not None:  # the item is still in the table: only our reads hide it
        raw = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "lease"}, "sk": {"S": "a"}})
        assert "Item" in raw
    assert state.put("lease", "a", {"owner": "three"}, if_absent=True, expires_at=clock.t + 10) is True
    assert state.get("lease", "a") == {"owner": "three"}
    clock.t += 11
    assert state.delete("lease", "a") is False  # deleting an expired item deletes nothing live


def test_expired_counters_start_again_from_zero(store: Any) -> None:
    state, clock, _ = store
    assert state.increment("usage_rpm", "k", "count", 5, expires_at=clock.t + 60) == 5
    clock.t += 61
    assert state.increment("usage_rpm", "k", "count", 1, expires_at=clock.t + 60) == 1
