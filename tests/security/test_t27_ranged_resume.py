"""T-27 resumable ranged download: a pull cut midway resumes with only the missing bytes and the
identical hash; an ETag change forces a restart from zero; a 200 instead of 206 resets progress.
(``tests/api/test_pull_push.py`` has the same cases for the pull API; these run on their own.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_registry import FakeRegistry, digest_of, pull, serve_registry
from serving import RunningServer, run_server

CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'
BIG = os.urandom(200 << 10)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        reg.publish(CONFIG, [BIG])
        yield reg


@pytest.fixture
def puller(tmp_path: Path) -> Iterator[RunningServer]:
    with run_server(tmp_path, registry_allow_loopback=True, pull_parts=4, pull_min_part_bytes=16 << 10) as s:
        yield s


def name(reg: FakeRegistry) -> str:
    return reg.url.removeprefix("http://") + "/ns/big:v1"


def cut(puller: RunningServer, registry: FakeRegistry) -> int:
    registry.budget = 60 << 10
    assert pull(puller.url, name(registry)).status_code >= 400
    kept = sum(p.stat().st_size for p in (puller.settings.models / ".skyllama" / "partial").rglob("part-*"))
    assert 0 < kept < len(BIG)
    registry.budget, registry.served = None, 0
    return kept


def blob(puller: RunningServer) -> bytes:
    return (puller.settings.models / "blobs" / digest_of(BIG).replace(":", "-")).read_bytes()


def test_resume_fetches_only_missing_bytes_with_an_identical_hash(puller: RunningServer,
                                                                  registry: FakeRegistry) -> None:
    kept = cut(puller, registry)
    assert pull(puller.url, name(registry)).status_code == 200
    assert registry.served == len(BIG) - kept + len(CONFIG) and blob(puller) == BIG


def test_etag_change_restarts_from_zero(puller: RunningServer, registry: FakeRegistry) -> None:
    cut(puller, registry)
    registry.etag = '"v2"'
    assert pull(puller.url, name(registry)).status_code == 200
    assert registry.served >= len(BIG) + len(CONFIG) and blob(puller) == BIG  # the kept bytes are refetched


def test_200_instead_of_206_resets_progress(puller: RunningServer, registry: FakeRegistry) -> None:
    cut(puller, registry)
    registry.ranges = False
    assert pull(puller.url, name(registry)).status_code == 200
    assert registry.served >= len(BIG) + len(CONFIG) and blob(puller) == BIG
