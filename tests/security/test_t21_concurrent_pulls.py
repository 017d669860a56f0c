"""T-21 concurrent pulls of the same digest: one upstream fetch shared by every waiter, a waiter
that goes away does not cancel the others, and a download abandoned by a dead process is taken
over by the next one from its checkpoint (only the missing bytes are fetched)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_registry import FakeRegistry, digest_of, pull, serve_registry
from serving import run_server

CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'
SETTINGS = {"registry_allow_loopback": True, "pull_parts": 4, "pull_min_part_bytes": 16 << 10}


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        yield reg


def name_of(reg: FakeRegistry, model: str = "big") -> str:
    return reg.url.removeprefix("http://") + f"/ns/{model}:v1"


def test_many_waiters_share_one_fetch_and_a_leaver_cancels_nobody(tmp_path: Path, registry: FakeRegistry) -> None:
    big = os.urandom(256 << 10)
    registry.publish(CONFIG, [big])
    registry.delay = 0.005
    with run_server(tmp_path, **SETTINGS) as server:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(pull(server.url, name_of(registry)).status_code))
                   for _ in range(4)]
        for t in threads:
            t.start()
        with httpx.stream("POST", f"{server.url}/api/pull", json={"model": name_of(registry), "insecure": True},
                          timeout=30) as r:
            for n, line in enumerate(r.iter_lines()):
                if json.loads(line).get("digest") or n > 3:
                    break  # this waiter leaves mid-download
        for t in threads:
            t.join(60)
        assert results == [200] * 4
        assert registry.served == len(big) + len(CONFIG)  # every byte fetched once
        assert (tmp_path / "blobs" / digest_of(big).replace(":", "-")).read_bytes() == big


def test_a_dead_pullers_download_is_taken_over_from_its_checkpoint(tmp_path: Path, registry: FakeRegistry) -> None:
    big = os.urandom(200 << 10)
    registry.publish(CONFIG, [big])
    registry.budget = 60 << 10
    with run_server(tmp_path, **SETTINGS) as first:
        assert pull(first.url, name_of(registry)).status_code >= 400
    kept = sum(p.stat().st_size for p in (tmp_path / ".skyllama" / "partial").rglob("part-*"))
    assert 0 < kept < len(big)
    registry.budget = None
    registry.served = 0
    with run_server(tmp_path, **SETTINGS) as second:  # a new process over the same folder
        r = pull(second.url, name_of(registry))
        assert r.status_code == 200, r.text
    assert registry.served == len(big) - kept + len(CONFIG)
    assert (tmp_path / "blobs" / digest_of(big).replace(":", "-")).read_bytes() == big
