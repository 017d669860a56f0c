"""T-25 conditional-write handling: ``put(if_absent)`` has exactly one winner under concurrency
(SQLite and DynamoDB under moto); DynamoDB's ``ConditionalCheckFailedException`` is the expected
"someone else holds it" answer (False), never an error, while throttling and other codes become a
retryable ``StoreError`` (503); ``delete`` with ``ALL_OLD`` reports only a live item as deleted.
S3 412/409 and ``ClientRequestToken`` reuse need real AWS (moto ignores them) and are not tested
here (no account in CI)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from faults import aws_stores, moto_aws, throttle

from skyllama.adapters.local.sqlite_state import SqliteStateStore
from skyllama.errors import StoreError


@pytest.fixture(params=["sqlite", "dynamodb"])
def state(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "sqlite":
        s = SqliteStateStore(tmp_path / "s.db")
        yield s
        s.close()
        return
    from moto.core.botocore_stubber import BotocoreStubber

    # AWS applies each request to an item atomically; moto's in-process backend does not, so its
    # requests are serialized (as in tests/contract): a client-side read-then-write would still race.
    lock = threading.Lock()
    handle = BotocoreStubber.__call__

    def serialized(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return handle(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", serialized)
    with moto_aws(monkeypatch):
        yield aws_stores(tmp_path / "cache")[3]


def test_if_absent_has_exactly_one_winner(state: Any) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim(n: int) -> None:
        barrier.wait()
        results.append(state.put("lease", "digest", {"holder": n}, if_absent=True))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert state.get("lease", "digest")["holder"] in range(8)


def test_dynamodb_condition_failure_is_false_and_throttling_is_a_store_error(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        state = aws_stores(tmp_path / "cache")[3]
        assert state.put("lease", "k", {"a": 1}, if_absent=True) is True
        assert state.put("lease", "k", {"a": 2}, if_absent=True) is False
        assert state.get("lease", "k") == {"a": 1}
        for kind, op, call in (("dynamodb", "PutItem", lambda: state.put("lease", "x", {}, if_absent=True)),
                               ("dynamodb-throttle", "GetItem", lambda: state.get("lease", "k")),
                               ("dynamodb", "DeleteItem", lambda: state.delete("lease", "k")),
                               ("dynamodb", "UpdateItem", lambda: state.increment("c", "k", "n", 1))):
            throttle(state.client, op, kind=kind)
            with pytest.raises(StoreError) as e:
                call()
            assert e.value.status == 503
        assert state.delete("lease", "k") is True
        assert state.delete("lease", "k") is False  # ALL_OLD: nothing was there any more


def test_other_condition_codes_are_not_mistaken_for_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        state = aws_stores(tmp_path / "cache")[3]

        def cancelled(**_k: Any) -> None:
            raise ClientError({"Error": {"Code": "TransactionCanceledException",
                                         "Message": "Transaction cancelled [ConditionalCheckFailed, None]"}},
                              "PutItem")

        state.client.meta.events.register("before-call.dynamodb.PutItem", cancelled)
        with pytest.raises(StoreError):
            state.put("lease", "y", {}, if_absent=True)
