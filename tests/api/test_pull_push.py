"""Pull and push between real servers on 127.0.0.1, with the official ``ollama`` client, and pulls
from a scriptable registry: resume after a cut (T-27), ETag change and 200-instead-of-206
restarts, corrupted blobs (T-20), and concurrent pulls sharing one download (T-21)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from fake_registry import FakeRegistry, digest_of, pull, serve_registry
from ggufs import write_tiny_gguf
from serving import RunningServer, run_server

CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'


def blob_names(models: Path) -> list[str]:
    folder = models / "blobs"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("sha256-")) if folder.exists() else []


def manifest_files(models: Path) -> list[Path]:
    return [p for p in (models / "manifests").rglob("*") if p.is_file()] if (models / "manifests").exists() else []


def partial_bytes(models: Path) -> int:
    return sum(p.stat().st_size for p in (models / ".skyllama" / "partial").rglob("part-*"))


@pytest.fixture
def puller(tmp_path: Path) -> Iterator[RunningServer]:
    folder = tmp_path / "puller"
    folder.mkdir()
    with run_server(folder, registry_allow_loopback=True, pull_parts=4, pull_min_part_bytes=16 << 10) as s:
        yield s


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        yield reg


@pytest.fixture
def big() -> bytes:
    return os.urandom(200 << 10)


def model_name(reg: FakeRegistry) -> str:
    return reg.url.removeprefix("http://") + "/ns/big:v1"


def test_push_to_one_server_and_pull_into_another(tmp_path: Path) -> None:
    folders = [tmp_path / n for n in ("a", "b", "c")]
    for f in folders:
        f.mkdir()
    with run_server(folders[0], registry_allow_loopback=True) as a, \
            run_server(folders[1], registry_allow_loopback=True) as b, \
            run_server(folders[2], registry_allow_loopback=True) as c:
        ca = ollama.Client(host=a.url)
        digest = ca.create_blob(write_tiny_gguf(tmp_path / "t.gguf", seed=3))
        name = f"{b.url.removeprefix('http://')}/ns/tiny:v1"
        assert list(ca.create(model=name, files={"t.gguf": digest}, template="{{ .Prompt }}",
                              stream=True))[-1].status == "success"
        events = list(ca.push(name, insecure=True, stream=True))
        statuses = [e.status for e in events]
        assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
        pushing = [e for e in events if e.status and e.status.startswith("pushing ") and e.digest]
        assert {e.status for e in pushing} == {f"pushing {e.digest[7:19]}" for e in pushing}
        assert all(e.total and 0 <= (e.completed or 0) <= e.total for e in pushing)
        assert "ns/tiny:v1" in [m.model for m in ollama.Client(host=b.url).list().models]

        cc = ollama.Client(host=c.url)
        events = list(cc.pull(name, insecure=True, stream=True))
        statuses = [e.status for e in events]
        assert statuses[0] == "pulling manifest"
        assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
        pulling = [e for e in events if e.digest]
        assert all(e.status == f"pulling {e.digest[7:19]}" and e.total is not None for e in pulling)
        assert {e.digest for e in pulling if e.completed == e.total} == {e.digest for e in pulling}
        assert cc.show(name).details.family == "llama"
        assert blob_names(folders[2]) == blob_names(folders[0])
        for blob in blob_names(folders[0]):
            assert (folders[2] / "blobs" / blob).read_bytes() == (folders[0] / "blobs" / blob).read_bytes()
        assert not list((folders[2] / "blobs").glob(".partial*"))
        assert cc.pull(name, insecure=True, stream=False).status == "success"
        again = list(cc.pull(name, insecure=True, stream=True))
        assert all(e.completed == e.total for e in again if e.digest)  # present layers: done at once


def test_pull_stream_false_and_missing_model(puller: RunningServer, registry: FakeRegistry, big: bytes) -> None:
    registry.publish(CONFIG, [big])
    r = pull(puller.url, model_name(registry))
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert blob_names(puller.settings.models) == sorted(f"sha256-{digest_of(b)[7:]}" for b in (CONFIG, big))
    assert registry.served == len(big) + len(CONFIG)
    assert sum(1 for m, p, h in registry.requests if "/blobs/" in p and "range" in h) == 4 + 1


def cut_then_resume(puller: RunningServer, registry: FakeRegistry, big: bytes) -> int:
    """First pull dies after 60 KiB; returns the bytes kept in partial parts."""
    registry.publish(CONFIG, [big])
    registry.budget = 60 << 10
    r = pull(puller.url, model_name(registry))
    assert r.status_code == 502 and "error" in r.json()
    models = puller.settings.models
    assert blob_names(models) == [] and manifest_files(models) == []
    kept = partial_bytes(models)
    assert 0 < kept < len(big)
    registry.budget = None
    registry.served = 0
    return kept


def test_pull_cut_midway_resumes_with_only_the_missing_bytes(puller: RunningServer, registry: FakeRegistry,
                                                             big: bytes) -> None:
    kept = cut_then_resume(puller, registry, big)
    r = pull(puller.url, model_name(registry))
    assert r.status_code == 200, r.text
    assert registry.served == len(big) - kept + len(CONFIG)
    assert (puller.settings.models / "blobs" / f"sha256-{digest_of(big)[7:]}").read_bytes() == big
    assert partial_bytes(puller.settings.models) == 0


def test_etag_change_restarts_from_zero(puller: RunningServer, registry: FakeRegistry, big: bytes) -> None:
    cut_then_resume(puller, registry, big)
    registry.etag = '"v2"'
    assert pull(puller.url, model_name(registry)).status_code == 200
    assert registry.served >= len(big) + len(CONFIG)
    assert (puller.settings.models / "blobs" / f"sha256-{digest_of(big)[7:]}").read_bytes() == big


def test_200_instead_of_206_restarts_from_zero(puller: RunningServer, registry: FakeRegistry, big: bytes) -> None:
    cut_then_resume(puller, registry, big)
    registry.ranges = False
    assert pull(puller.url, model_name(registry)).status_code == 200
    assert registry.served >= len(big) + len(CONFIG)
    assert (puller.settings.models / "blobs" / f"sha256-{digest_of(big)[7:]}").read_bytes() == big


def test_corrupted_blob_commits_nothing(puller: RunningServer, registry: FakeRegistry, big: bytes) -> None:
    registry.publish(CONFIG, [big])
    registry.blobs[digest_of(big)] = bytes(len(big))
    r = pull(puller.url, model_name(registry))
    assert r.status_code >= 400 and "digest mismatch" in r.json()["error"]
    models = puller.settings.models
    assert blob_names(models) == [] and manifest_files(models) == [] and partial_bytes(models) == 0


def test_concurrent_pulls_share_one_download(puller: RunningServer, registry: FakeRegistry, big: bytes) -> None:
    registry.publish(CONFIG, [big])
    registry.delay = 0.01
    results: list[int] = []

    def run() -> None:
        results.append(pull(puller.url, model_name(registry)).status_code)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while registry.served == 0 and time.time() < deadline:
        time.sleep(0.01)
    seen: list[dict[str, object]] = []
    with httpx.stream("POST", f"{puller.url}/api/pull", json={"model": model_name(registry), "insecure": True},
                      timeout=30) as r:
        for line in r.iter_lines():
            seen.append(__import__("json").loads(line))
            if len(seen) >= 2:
                break  # this waiter goes away; the others must not be cancelled
    for t in threads:
        t.join(timeout=60)
    assert results == [200, 200]
    assert registry.served == len(big) + len(CONFIG)
    assert seen[0] == {"status": "pulling manifest"}
