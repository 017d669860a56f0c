"""T-37: leftovers swept. A real server (``run_server``) removes crash leftovers at start and then
every ``SKYLLAMA_SWEEP_INTERVAL``, and never what is still in use:

- ``blobs/.partial-*`` files older than the upload idle timeout (``SKYLLAMA_BODY_IDLE_TIMEOUT``)
  go, at start and when one becomes stale while the server runs; a fresh one stays, and so does
  one held by a writer still open in the process even when its mtime is old (the writer then
  commits normally); Ollama's own ``sha256-*-partial`` files and committed blobs are never
  touched; an upload that streams slowly across many sweeps still succeeds;
- pull part folders (``.skyllama/partial/sha256-<hex>``) go only after the pull checkpoint's
  life (7 days without a write), and never while that digest is being downloaded.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from serving import RunningServer, run_server
from skyllama.services.registry.download import CHECKPOINT_TTL

IDLE = 1.0  # the upload idle timeout of these servers
INTERVAL = 0.2  # their sweep period
HOUR = 3600.0


def leftover(folder: Path, name: str, age: float) -> Path:
    """A file ``name`` in ``folder`` whose mtime is ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"half an upload")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def swept_once_more(blobs: Path) -> None:
    """Wait for one more sweep: a stale canary file disappears."""
    canary = leftover(blobs, f".partial-canary-{time.monotonic_ns()}", HOUR)
    assert eventually(lambda: not canary.exists()), "no sweep ran"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    (folder / "blobs").mkdir(parents=True)
    return folder


@pytest.fixture
def server(models: Path) -> Iterator[RunningServer]:
    with run_server(models, body_idle_timeout=IDLE, sweep_interval=INTERVAL) as running:
        yield running


def test_stale_upload_leftovers_are_swept_at_start_and_nothing_else(models: Path) -> None:
    blobs = models / "blobs"
    stale = [leftover(blobs, ".partial-" + "a" * 32, HOUR), leftover(blobs, ".partial-" + "b" * 32, 2 * IDLE)]
    fresh = leftover(blobs, ".partial-" + "c" * 32, 0)
    ollama_partial = leftover(blobs, "sha256-" + "d" * 64 + "-partial", HOUR)  # Ollama's own, not ours
    data = b"a committed blob"
    committed = leftover(blobs, "sha256-" + hashlib.sha256(data).hexdigest(), HOUR)
    committed.write_bytes(data)
    with run_server(models, body_idle_timeout=IDLE, sweep_interval=HOUR) as running:  # only the start sweep
        assert eventually(lambda: not any(p.exists() for p in stale))
        assert fresh.exists() and ollama_partial.exists() and committed.exists()
        r = httpx.head(f"{running.url}/api/blobs/sha256:{hashlib.sha256(data).hexdigest()}")
        assert r.status_code == 200


def test_a_leftover_that_goes_stale_while_serving_is_swept(server: RunningServer) -> None:
    blobs = server.settings.models / "blobs"
    path = leftover(blobs, ".partial-" + "e" * 32, IDLE - 0.5)  # fresh at the start sweep
    assert eventually(lambda: not path.exists(), timeout=5 + IDLE)
    assert httpx.get(f"{server.url}/api/version").status_code == 200


def test_an_open_writer_is_never_swept_even_when_idle(server: RunningServer) -> None:
    blobs = server.settings.models / "blobs"
    writer = server.runtime.blobs.writer()
    writer.write(b"first half, ")
    held = [p for p in blobs.iterdir() if p.name.startswith(".partial-") and "canary" not in p.name]
    assert len(held) == 1
    stamp = time.time() - HOUR  # as if the writer had been idle for an hour
    os.utime(held[0], (stamp, stamp))
    swept_once_more(blobs)
    swept_once_more(blobs)
    assert held[0].exists()
    writer.write(b"second half")
    digest = writer.commit()
    assert (blobs / digest.filename).read_bytes() == b"first half, second half"
    assert not held[0].exists()


def test_a_slow_upload_survives_the_sweeps(server: RunningServer) -> None:
    """Chunks every 0.4 s (under the idle timeout), over many sweeps: the upload completes."""
    chunks = [os.urandom(64 << 10) for _ in range(6)]
    digest = "sha256:" + hashlib.sha256(b"".join(chunks)).hexdigest()

    def body() -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            time.sleep(0.4)

    r = httpx.post(f"{server.url}/api/blobs/{digest}", content=body(), timeout=30)
    assert r.status_code == 201, r.text
    assert not [p for p in (server.settings.models / "blobs").iterdir()
                if p.name.startswith(".partial-") and "canary" not in p.name]


def part_folder(models: Path, hex_char: str, age: float) -> Path:
    folder = models / ".skyllama" / "partial" / f"sha256-{hex_char * 64}"
    leftover(folder, "part-0", age)
    leftover(folder, "part-1", age)
    stamp = time.time() - age
    os.utime(folder, (stamp, stamp))
    return folder


def test_pull_parts_are_kept_for_the_checkpoint_life(models: Path) -> None:
    abandoned = part_folder(models, "1", CHECKPOINT_TTL + HOUR)
    resumable = part_folder(models, "2", CHECKPOINT_TTL - HOUR)  # a pull paused for six days resumes
    with run_server(models, body_idle_timeout=IDLE, sweep_interval=INTERVAL) as running:
        assert eventually(lambda: not abandoned.exists())
        assert resumable.exists()
        busy = "3" * 64
        running.runtime.transfers.downloads.downloads[busy] = object()  # type: ignore[assignment]
        downloading = part_folder(models, "3", CHECKPOINT_TTL + HOUR)
        swept_once_more(models / "blobs")
        swept_once_more(models / "blobs")
        assert downloading.exists() and (downloading / "part-0").exists()
        del running.runtime.transfers.downloads.downloads[busy]
        assert eventually(lambda: not downloading.exists())
        assert resumable.exists()
