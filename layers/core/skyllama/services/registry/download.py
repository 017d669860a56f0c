"""Resumable, shared blob downloads for pull (T-21, T-27).

A blob is fetched in up to ``pull_parts`` ranged parts in parallel. Part bytes live in a
:class:`PartStore` (locally: ``<models>/.skyllama/partial/sha256-<hex>/part-<n>``, never a
``blobs/sha256-*`` name) and the plan with the upstream ETag in a :class:`PullCheckpoint`
(backed by the StateStore, so a future S3 worker can keep its multipart state the same way).
After a crash or a cut connection the next pull continues each part with ``Range``; a changed
ETag, or a 200 where a 206 was asked for, restarts the blob from zero. When every part is in,
the bytes are hashed; a mismatch discards them. Committing goes through ``BlobStore.writer``
(which verifies the sha256 again), so any blob store works.

Downloads are shared: :class:`DownloadManager` keeps one :class:`BlobDownload` per digest; every
pull waiting on it sees the same progress, and a waiter that leaves does not cancel the others
(the download stops only when nobody waits, and then resumes next time).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from ...digests import Digest
from ...ports import PULL_CHECKPOINT_TTL, BlobStore, PartStore, StateStore
from .client import RegistryClient, RegistryError, check_encoding, expect

MAX_TRIES = 3
RESTARTS = 3
APPEND_CHUNK = 4 << 20
CHECKPOINT_KIND = "pull_checkpoint"
CHECKPOINT_TTL = PULL_CHECKPOINT_TTL


class PullCheckpoint:
    """The plan of an unfinished download (size, parts, ETag, verified), in the StateStore."""

    def __init__(self, state: StateStore, scope: str = "") -> None:
        self.state, self.scope = state, scope

    def _key(self, digest: Digest) -> str:
        return f"{digest.hex}.{self.scope}" if self.scope else digest.hex

    def load(self, digest: Digest) -> dict[str, Any] | None:
        return self.state.get(CHECKPOINT_KIND, self._key(digest))

    def save(self, digest: Digest, plan: dict[str, Any]) -> None:
        self.state.put(CHECKPOINT_KIND, self._key(digest), plan, expires_at=_now() + CHECKPOINT_TTL)

    def clear(self, digest: Digest) -> None:
        self.state.delete(CHECKPOINT_KIND, self._key(digest))


def _now() -> float:
    return time.time()


def plan_parts(size: int, parts: int, min_part: int) -> list[list[int]]:
    """``[[start, end), ...]``: one part for small blobs, up to ``parts`` of >= ``min_part``."""
    if size <= 0:
        return []
    count = max(1, min(parts, size // max(min_part, 1)))
    step = -(-size // count)
    return [[start, min(start + step, size)] for start in range(0, size, step)]


class _Restart(Exception):
    def __init__(self, reason: str, ranges: bool = True) -> None:
        super().__init__(reason)
        self.ranges = ranges


class BlobDownload:
    """One blob's download, shared by every pull that needs it."""

    def __init__(self, digest: Digest, size: int, client_factory: Callable[[], RegistryClient],
                 parts: PartStore, checkpoint: PullCheckpoint, *, n_parts: int, min_part: int) -> None:
        self.digest, self.size = digest, size
        self.completed = 0
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.refs = 0
        self.task: asyncio.Task[None] | None = None
        self._factory = client_factory
        self._parts, self._checkpoint = parts, checkpoint
        self._n_parts, self._min_part = n_parts, min_part
        self._plan: dict[str, Any] = {}

    def progress(self) -> dict[str, Any]:
        return {"status": f"pulling {self.digest.short}", "digest": str(self.digest),
                "total": self.size, "completed": min(self.completed, self.size)}

    def release(self) -> None:
        self.refs -= 1
        if self.refs <= 0 and self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self) -> None:
        try:
            async with self._factory() as client:
                await self._run(client)
        except asyncio.CancelledError:
            self.error = RegistryError("download cancelled")
            raise
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            self.error = e
        finally:
            self.done.set()

    async def _run(self, client: RegistryClient) -> None:
        ranges = True
        for _ in range(RESTARTS):
            plan = await anyio.to_thread.run_sync(self._load_plan, ranges)
            if plan.get("verified"):
                self.completed = self.size
                return
            try:
                await self._fetch_parts(client, plan)
                break
            except _Restart as r:
                ranges = ranges and r.ranges
                await anyio.to_thread.run_sync(self._reset)
        else:
            raise RegistryError(f"download of {self.digest.short} kept restarting")
        await anyio.to_thread.run_sync(self._verify)

    def _load_plan(self, ranges: bool) -> dict[str, Any]:
        plan = self._checkpoint.load(self.digest)
        fresh = plan_parts(self.size, self._n_parts if ranges else 1, self._min_part if ranges else self.size)
        reuse = False
        if plan is not None and plan.get("size") == self.size and isinstance(plan.get("parts"), list):
            self._parts.begin(self.digest, plan["parts"])
            sizes = [self._parts.size(self.digest, n) for n in range(len(plan["parts"]))]
            # a verified plan whose parts are gone (an expired upload) starts again
            reuse = all(have <= end - start for have, (start, end) in zip(sizes, plan["parts"], strict=True)) \
                and (not plan.get("verified") or sum(sizes) == self.size)
        if plan is not None and reuse:
            self._plan = plan
        else:
            self._parts.clear(self.digest)
            self._plan = {"size": self.size, "parts": fresh, "etag": None, "verified": False}
            self._checkpoint.save(self.digest, self._plan)
            self._parts.begin(self.digest, fresh)
        self.completed = sum(self._parts.size(self.digest, n) for n in range(len(self._plan["parts"])))
        return self._plan

    def _reset(self) -> None:
        self._parts.clear(self.digest)
        self._checkpoint.clear(self.digest)
        self.completed = 0

    async def _fetch_parts(self, client: RegistryClient, plan: dict[str, Any]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                for n, (start, end) in enumerate(plan["parts"]):
                    tg.start_soon(self._fetch_part, client, n, start, end)
        except BaseExceptionGroup as group:  # one part's failure stands for the whole blob
            leaves = _leaves(group)
            restart: list[BaseException] = [e for e in leaves if isinstance(e, _Restart)]
            raise (restart or [e for e in leaves if isinstance(e, Exception)] or leaves)[0] from None

    async def _fetch_part(self, client: RegistryClient, n: int, start: int, end: int) -> None:
        tries = 0
        url = client.url(f"/blobs/{self.digest}")
        single = len(self._plan["parts"]) == 1
        while (have := self._parts.size(self.digest, n)) < end - start:
            offset = start + have
            try:
                response = await client.request("GET", url, headers={"Range": f"bytes={offset}-{end - 1}"},
                                                follow=True)
                try:
                    got = await self._consume(response, n, offset, end, single)
                finally:
                    await response.aclose()
                if got:
                    continue
                raise RegistryError("registry sent an empty body")
            except RegistryError:
                tries += 1
                if tries >= MAX_TRIES:
                    raise
                await anyio.sleep(0.2 * tries)

    async def _consume(self, response: httpx.Response, n: int, offset: int, end: int, single: bool) -> int:
        if response.status_code == 200:
            if not single:
                raise _Restart("200 instead of 206", ranges=False)
            if offset:  # no range support: this part (the whole blob) starts again from zero
                self._parts.truncate(self.digest, n)
                self.completed -= offset
                offset = 0
        elif response.status_code == 206:
            if not response.headers.get("content-range", "").replace(" ", "").startswith(f"bytes{offset}-"):
                raise RegistryError("registry answered a different range than asked for")
        else:
            await expect(response, 206)
        check_encoding(response)
        etag = response.headers.get("etag")
        if etag and self._plan.get("etag") is None:
            self._plan["etag"] = etag
            await anyio.to_thread.run_sync(self._checkpoint.save, self.digest, self._plan)
        elif etag and etag != self._plan.get("etag"):
            raise _Restart("upstream ETag changed")
        declared = response.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > end - offset):
            raise RegistryError("registry declared a bad Content-Length")
        got = 0
        buffer = bytearray()  # appended in APPEND_CHUNK pieces from a worker thread, not per read
        try:
            async for chunk in response.aiter_raw():
                take = chunk[: end - offset - got - len(buffer)]
                buffer += take
                if len(buffer) >= APPEND_CHUNK:
                    got += await self._append(n, buffer)
                    buffer = bytearray()
                if got + len(buffer) >= end - offset:
                    break
        except httpx.HTTPError as e:
            got += await self._append(n, buffer)
            if got:
                return got
            raise RegistryError(f"blob download cut off: {type(e).__name__}") from e
        return got + await self._append(n, buffer)

    async def _append(self, n: int, data: bytearray) -> int:
        if data:
            await anyio.to_thread.run_sync(self._parts.append, self.digest, n, bytes(data))
            self.completed += len(data)
        return len(data)

    def _verify(self) -> None:
        if not self._parts.verify(self.digest, len(self._plan["parts"])):
            self._reset()
            raise RegistryError(f"digest mismatch, file must be downloaded again: {self.digest}")
        self._plan["verified"] = True
        self._checkpoint.save(self.digest, self._plan)

    def commit(self, blobs: BlobStore) -> None:
        """Publish the verified parts under the blob's name (the part store knows how)."""
        self._parts.commit(self.digest, len(self._plan.get("parts") or []), blobs)
        self._parts.clear(self.digest)
        self._checkpoint.clear(self.digest)


class DownloadManager:
    """In-flight downloads of one process (one per services), keyed by digest."""

    def __init__(self) -> None:
        self.downloads: dict[str, BlobDownload] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def join(self, digest: Digest, make: Callable[[], BlobDownload]) -> BlobDownload:
        """The running download of ``digest``, or a new one started now; the caller holds a ref."""
        download = self.downloads.get(digest.hex)
        if download is None or download.done.is_set():
            download = make()
            self.downloads[digest.hex] = download
            download.task = asyncio.get_running_loop().create_task(download.run())
            download.task.add_done_callback(functools.partial(self._forget, digest, download))
        download.refs += 1
        return download

    def _forget(self, digest: Digest, download: BlobDownload, _task: object = None) -> None:
        if self.downloads.get(digest.hex) is download:
            del self.downloads[digest.hex]

    def lock(self, digest: Digest) -> asyncio.Lock:
        return self.locks.setdefault(digest.hex, asyncio.Lock())


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
