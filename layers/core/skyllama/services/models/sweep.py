"""Sweep of what crashed writers leave behind (T-37), at server start and then periodically.

- **Upload leftovers** (``blobs/.partial-*``, written while a blob's bytes are hashed): removed
  once their mtime is older than the upload idle timeout (``SKYLLAMA_BODY_IDLE_TIMEOUT``: an
  upload that pauses that long is closed anyway). A writer still open in this process is skipped
  however old its file is; any other writer refreshes the mtime with every write. Ollama's own
  partial files (``sha256-<hex>-partial*``) are never touched.
- **Pull parts** (``<models>/.skyllama/partial/sha256-<hex>/``): pulls are resumable, so a
  folder is kept as long as its checkpoint can be (``ports.PULL_CHECKPOINT_TTL``, 7 days since its
  newest part was written) and never while this process downloads that digest.
- **AWS**: nothing here. Open multipart uploads and temporary objects under ``uploads/`` may
  belong to a live upload on another instance or to a pull that a later invocation resumes
  (S3 gives no last-activity time), so they are left to the bucket's lifecycle rules
  (``template.yaml``: open multipart uploads aborted 1 day after they began, ``uploads/``
  objects expired after 2); ``S3BlobStore.sweep_partials`` is there for an explicit sweep.

Every ``SKYLLAMA_SWEEP_INTERVAL`` seconds (default 10 minutes) the sweep runs again, off the
event loop; a failing sweep is logged and retried at the next tick, it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from ...ports import PULL_CHECKPOINT_TTL, PartStore
from ...settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """How many leftovers one sweep removed."""

    uploads: int = 0
    pulls: int = 0


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for entry in os.scandir(folder):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, entry.stat().st_mtime)
    return newest


def sweep_pull_parts(root: Path, *, older_than: float, busy: set[str]) -> int:
    """Remove part folders (``sha256-<hex>``) untouched for ``older_than`` s, not in ``busy``."""
    if not root.is_dir():
        return 0
    removed = 0
    now = time.time()
    for entry in os.scandir(root):
        if not entry.name.startswith("sha256-") or entry.name.removeprefix("sha256-") in busy:
            continue
        try:
            if now - _newest_mtime(Path(entry.path)) < older_than:
                continue
        except (FileNotFoundError, NotADirectoryError):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


class _Stores(Protocol):
    @property
    def parts(self) -> PartStore: ...

    @property
    def sweep_uploads(self) -> Callable[[float], int] | None: ...


def sweep_leftovers(stores: _Stores, downloading: Callable[[], set[str]], settings: Settings) -> SweepReport:
    """One sweep of this process's local leftovers (blocking: file system calls); ``downloading``
    names the digests (hex) pulls of this process are fetching, whose parts are never swept."""
    if stores.sweep_uploads is None:
        return SweepReport()  # AWS: the bucket's lifecycle rule (see the module docstring)
    uploads = stores.sweep_uploads(settings.body_idle_timeout)
    pulls = 0
    root = getattr(stores.parts, "root", None)  # LocalPartStore's folder
    if isinstance(root, Path):
        pulls = sweep_pull_parts(root, older_than=PULL_CHECKPOINT_TTL, busy=downloading())
    if uploads or pulls:
        log.info("swept %d upload leftover(s) and %d abandoned pull(s)", uploads, pulls)
    return SweepReport(uploads=uploads, pulls=pulls)


async def _sweep_forever(stores: _Stores, downloading: Callable[[], set[str]], settings: Settings) -> None:
    interval = settings.sweep_interval
    while True:
        try:
            await anyio.to_thread.run_sync(sweep_leftovers, stores, downloading, settings)
        except Exception:  # noqa: BLE001 - a failed sweep must not end the loop
            log.exception("sweeping leftovers failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


def start_sweeper(stores: _Stores, downloading: Callable[[], set[str]], settings: Settings) -> Callable[[], Awaitable[None]]:
    """Sweep now and every ``sweep_interval`` seconds, on the running loop; returns the closer
    that stops it (at the app's shutdown)."""
    task = asyncio.get_running_loop().create_task(_sweep_forever(stores, downloading, settings),
                                                  name="skyllama-sweeper")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
