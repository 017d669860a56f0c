"""StateStore contract: SQLite and DynamoDB (moto) behave the same (SECURITY.md T-24, T-25)."""

from __future__ import annotations

import threading
from typing import Any

from contract_support import FakeClock


def test_put_get_overwrite_delete(state: Any) -> None:
    item = {"name": "smollm2", "size": 123, "ratio": 0.25, "tags": ["a", "b"], "nested": {"x": 1}, "ok": True}
    assert state.put("model", "smollm2:135m", item) is True
    assert state.get("model", "smollm2:135m") == item
    assert state.put("model", "smollm2:135m", {"name": "new"}) is True
    assert state.get("model", "smollm2:135m") == {"name": "new"}  # a put replaces the whole item
    assert state.delete("model", "smollm2:135m") is True
    assert state.delete("model", "smollm2:135m") is False
    assert state.get("model", "smollm2:135m") is None


def test_missing_items(state: Any) -> None:
    state.put("job", "a", {"v": 1})
    assert state.get("job", "b") is None
    assert state.get("other", "a") is None
    assert state.delete("job", "b") is False
    assert state.query("nothing") == []


def test_values_round_trip(state: Any) -> None:
    item = {
        "int": 7,
        "neg": -3,
        "float": 1.5,
        "tiny": 1e-7,
        "big": 2**70,
        "huge": 10**40,
        "zero": 0,
        "bool": False,
        "none": None,
        "text": "ünïcode ✓",
        "empty": "",
        "list": [1, 2.5, "x"],
    }
    state.put("k", "values", item)
    assert state.get("k", "values") == item


def test_if_absent_conflicts(state: Any) -> None:
    assert state.put("lease", "pull:abc", {"owner": "a"}, if_absent=True) is True
    assert state.put("lease", "pull:abc", {"owner": "b"}, if_absent=True) is False
    assert state.get("lease", "pull:abc") == {"owner": "a"}
    assert state.put("lease", "pull:abc", {"owner": "b"}) is True  # without the condition: replaced
    assert state.get("lease", "pull:abc") == {"owner": "b"}


def test_if_absent_under_contention_has_one_winner(state: Any) -> None:
    wins: list[int] = []

    def claim(i: int) -> None:
        if state.put("lease", "one", {"owner": i}, if_absent=True):
            wins.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert state.get("lease", "one") == {"owner": wins[0]}


def test_expired_items_are_absent_everywhere(state: Any, clock: FakeClock) -> None:
    state.put("instance", "a", {"v": 1}, expires_at=clock.now() + 60)
    state.put("instance", "b", {"v": 2}, expires_at=clock.now() + 600)
    state.put("instance", "c", {"v": 3})
    assert [k for k, _ in state.query("instance")] == ["a", "b", "c"]
    clock.advance(60)  # exactly at expires_at: expired
    assert state.get("instance", "a") is None
    assert state.query("instance") == [("b", {"v": 2}), ("c", {"v": 3})]
    assert state.query("instance", "a") == []
    # if_absent treats the expired item as absent.
    assert state.put("instance", "a", {"v": 10}, if_absent=True) is True
    assert state.get("instance", "a") == {"v": 10}
    clock.advance(10_000)
    assert state.query("instance") == [("a", {"v": 10}), ("c", {"v": 3})]


def test_increment_after_expiry_starts_again(state: Any, clock: FakeClock) -> None:
    state.increment("usage", "key1", "tokens", 5, expires_at=clock.now() + 10)
    clock.advance(11)
    assert state.get("usage", "key1") is None
    assert state.increment("usage", "key1", "tokens", 2) == 2
    assert state.get("usage", "key1") == {"tokens": 2}


def test_increment(state: Any, clock: FakeClock) -> None:
    assert state.increment("usage", "k", "tokens", 3) == 3
    assert state.increment("usage", "k", "tokens", 4.5) == 7.5
    assert state.increment("usage", "k", "requests", 1) == 1
    assert state.get("usage", "k") == {"tokens": 7.5, "requests": 1}


def test_increment_adds_to_a_put_item_and_keeps_its_expiry(state: Any, clock: FakeClock) -> None:
    state.put("usage", "k", {"tokens": 10, "owner": "me"}, expires_at=clock.now() + 100)
    assert state.increment("usage", "k", "tokens", 5) == 15
    assert state.get("usage", "k") == {"tokens": 15, "owner": "me"}
    clock.advance(100)
    assert state.get("usage", "k") is None  # the increment kept the item's expiry


def test_increment_sets_expiry(state: Any, clock: FakeClock) -> None:
    state.increment("usage", "k", "n", 1, expires_at=clock.now() + 5)
    state.increment("usage", "k", "n", 1, expires_at=clock.now() + 50)
    clock.advance(10)
    assert state.get("usage", "k") == {"n": 2}


def test_concurrent_increments_add_up_exactly(state: Any) -> None:
    threads_n, per_thread = 8, 25

    def work() -> None:
        for _ in range(per_thread):
            state.increment("usage", "shared", "tokens", 1)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.get("usage", "shared") == {"tokens": threads_n * per_thread}


def test_query_by_prefix_in_key_order(state: Any) -> None:
    keys = ["job:b", "job:a", "job:c2", "job:c1", "jobx", "job", "other:a", "Job:z", "job:é", "job:~"]
    for k in keys:
        state.put("job", k, {"k": k})
    state.put("model", "job:zz", {"k": "wrong kind"})
    got = state.query("job", "job:")
    assert [k for k, _ in got] == ["job:a", "job:b", "job:c1", "job:c2", "job:~", "job:é"]
    assert all(item == {"k": k} for k, item in got)
    assert [k for k, _ in state.query("job")] == sorted(keys)


def test_query_pages(state: Any) -> None:
    if hasattr(state, "page_limit"):
        state.page_limit = 7  # force several DynamoDB pages
    for i in range(40):
        state.put("usage", f"day:{i:03d}", {"i": i})
    got = state.query("usage", "day:")
    assert [item["i"] for _, item in got] == list(range(40))


def test_delete_of_an_expired_item_reports_nothing_deleted(state: Any, clock: FakeClock) -> None:
    state.put("instance", "gone", {"v": 1}, expires_at=clock.now() + 1)
    clock.advance(2)
    assert state.delete("instance", "gone") is False
