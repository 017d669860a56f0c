"""The runner scheduler: which models are loaded, who may use them, and when they go away.

- One :class:`Runner` per loaded model, keyed by the manifest digest and the :class:`LoadSpec`
  (the GGUF blob plus the load options): two names for the same manifest (``/api/copy``) share a
  runner, a model created with another ``num_ctx`` is another model with its own runner, and the
  same model asked for with other load options replaces its runner once that is idle (as Ollama
  reloads).
- ``keep_alive`` per request (a :class:`~skyllama.keep_alive.KeepAlive`, default
  ``OLLAMA_KEEP_ALIVE``): ``0`` unloads as soon as the runner is idle, forever never expires. The
  expiry (``KeepAlive.expires_at``) is set when a request ends, and a background task unloads idle
  runners on time.
- At most ``OLLAMA_MAX_LOADED_MODELS`` runners: a new one evicts the least recently used *idle*
  runner; when every runner is busy the request waits for one to become idle.
- ``OLLAMA_NUM_PARALLEL`` (or the model's ``num_parallel`` PARAMETER) requests run at once per
  runner. With more than one slot, a generative model's runner is **batched** by default
  (``SKYLLAMA_GEN_BATCHING``): one :class:`~skyllama.engine.multiseq.MultiSeqModel` shared by
  every slot decodes all running generations in one llama.cpp batch per token. Otherwise
  (batching off, embedding models, a custom loader) llama.cpp contexts are not thread-safe, so
  each parallel slot gets **its own context** (loaded on first need; weights are mmap-shared
  through the page cache).
- At most ``OLLAMA_MAX_QUEUE`` requests wait (for a slot or for room); one more is a 503 at once.
- Loading and unloading run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...engine.base import Engine, EngineModel, LoadSpec
from ...errors import Busy
from ...keep_alive import KeepAlive, ps_expires_at
from ...option_bounds import OptionLimits, check_bounds
from ...options import effective_options
from ...ports import Clock
from ...settings import Settings
from ..models.catalog import Catalog, Model
from .batching import EmbedBatcher

log = logging.getLogger(__name__)

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"



class RunnerObserver(Protocol):
    """Told when a runner's expiry moves and when it leaves memory (fleet instance records)."""

    async def used(self, runner: Runner) -> None: ...

    async def unloaded(self, runner: Runner) -> None: ...

    async def forget(self, digest: str) -> None: ...


@dataclass(eq=False)
class Runner:
    """A loaded model: its contexts (one per parallel slot), users, and expiry."""

    key: tuple[str, LoadSpec]
    spec: LoadSpec
    model: Model
    parallel: int
    sem: asyncio.Semaphore
    ready: asyncio.Future[None]
    contexts: list[EngineModel] = field(default_factory=list)
    free: list[EngineModel] = field(default_factory=list)
    refs: int = 0  # requests committed to this runner (waiting or running)
    keep_alive: KeepAlive = KeepAlive(300.0)
    expires_at: float = math.inf  # epoch seconds (KeepAlive.expires_at); inf: forever
    last_used: float = 0.0
    closed: bool = False
    shared: bool = False  # one batched context for every slot (``contexts[0]``)

    @property
    def idle(self) -> bool:
        return self.refs == 0 and self.ready.done()

    @property
    def failed(self) -> bool:
        """A context's runner process died (or was killed as hung): the runner must be replaced."""
        return any(not getattr(c, "alive", True) for c in self.contexts)


@dataclass
class Lease:
    """One request's use of a runner: the context it may use alone, and its load time (ns)."""

    runner: Runner
    context: EngineModel
    load_duration: int


class Scheduler:
    """Loads, shares, queues and expires runners (see the module docstring)."""

    def __init__(self, settings: Settings, catalog: Catalog, engine: Engine, *, clock: Clock | None = None,
                 observer: RunnerObserver | None = None) -> None:
        self.settings = settings
        self.observer = observer
        self.catalog = catalog
        self.clock = clock or Clock()
        self.engine = engine
        self._runners: dict[tuple[str, LoadSpec], Runner] = {}
        self._cond: asyncio.Condition | None = None
        self._waiting = 0
        self._wake: asyncio.Event | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # failed runners' contexts being freed
        self.embed_batcher = EmbedBatcher(self.acquire, wait_ms=settings.batch_wait_ms, max_inputs=settings.batch_max_inputs)

    # -- planning --------------------------------------------------------------------------------

    def plan(self, model: Model, options: dict[str, Any]) -> tuple[LoadSpec, int]:
        """The load spec and parallel slots for ``model`` with request ``options``."""
        # Checked again here, whoever the caller is: these values go straight to llama.cpp (T-31).
        limits = OptionLimits.from_settings(self.settings)
        check_bounds(options, limits)
        merged = effective_options(model.params, options, limits)
        layer = model.model_layer
        info = self.catalog.gguf_info(layer.digest) if layer else None
        train_ctx = info.context_length if info and info.context_length else None
        n_ctx = merged.get("num_ctx") or self.settings.context_length or train_ctx or 2048
        if train_ctx:
            n_ctx = min(n_ctx, train_ctx)
        n_ctx = max(min(n_ctx, self.settings.max_num_ctx), 16)
        embedding = bool(info and info.is_embedding_model)
        n_batch = n_ctx if embedding else max(1, min(int(merged.get("num_batch") or 512), n_ctx))
        spec = LoadSpec(
            path=str(self.catalog.model_path(model)), n_ctx=n_ctx, n_batch=n_batch,
            n_gpu_layers=int(merged.get("num_gpu", -1)), main_gpu=int(merged.get("main_gpu", 0)),
            use_mmap=bool(merged.get("use_mmap", True)), use_mlock=bool(merged.get("use_mlock", False)),
            n_threads=int(merged.get("num_thread") or self.settings.num_thread or 0),
            # Embedding models always use it: +5% texts/s, cosine 0.9999997 (tests/bench/sweep.py).
            flash_attn=self.settings.flash_attention or embedding, kv_cache_type=self.settings.kv_cache_type,
            embedding=embedding, name=model.name.display(), prompt_cache=self.settings.prompt_cache,
            adapters=tuple(str(self.catalog.blobs.local_path(a.digest)) for a in model.adapters),
            projector=str(self.catalog.blobs.local_path(model.projectors[0].digest)) if model.projectors else "",
        )
        parallel = int(merged.get("num_parallel") or self.settings.num_parallel_for(model.name.display())
                       or self.settings.effective_num_parallel)
        return spec, max(1, parallel)

    # -- using runners ---------------------------------------------------------------------------

    def _setup(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
            self._wake = asyncio.Event()
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        return self._cond

    def _keep_alive(self, keep_alive: KeepAlive | None) -> KeepAlive:
        return self.settings.keep_alive if keep_alive is None else keep_alive

    def _enter_queue(self) -> None:
        if self._waiting >= self.settings.max_queue:
            raise Busy(BUSY_MESSAGE)
        self._waiting += 1

    @asynccontextmanager
    async def acquire(self, model: Model, options: dict[str, Any], keep_alive: KeepAlive | None = None, *,
                      until: float | None = None) -> AsyncIterator[Lease]:
        """Hold one slot of the runner for ``model`` (loading it if needed) for the block.

        ``until`` (epoch seconds, inf: forever) overrides the expiry that ``keep_alive`` gives: a
        warm-up holds a model until the fleet's ``expires_at`` while recording the keep_alive asked.
        """
        started = time.perf_counter_ns()
        spec, parallel = await asyncio.to_thread(self.plan, model, options)
        runner = await self._runner_for(spec, model, parallel)
        try:
            if runner.sem.locked():
                self._enter_queue()
                try:
                    await runner.sem.acquire()
                finally:
                    self._waiting -= 1
            else:
                await runner.sem.acquire()
        except BaseException:
            await self._release_ref(runner, keep_alive, until)
            raise
        try:
            await asyncio.shield(runner.ready)
            if runner.shared:
                context = runner.contexts[0]
            else:
                context = runner.free.pop() if runner.free else await self._load_context(runner)
        except BaseException:
            runner.sem.release()
            await self._release_ref(runner, keep_alive, until)
            raise
        runner.expires_at = self._expiry(self._keep_alive(keep_alive)) if until is None else until
        try:
            yield Lease(runner, context, time.perf_counter_ns() - started)
        finally:
            if not runner.shared and getattr(context, "alive", True):
                runner.free.append(context)
            runner.sem.release()
            await self._release_ref(runner, keep_alive, until)

    async def _runner_for(self, spec: LoadSpec, model: Model, parallel: int) -> Runner:
        cond = self._setup()
        key = (model.digest.hex, spec)
        async with cond:
            waiting = False
            try:
                while True:
                    runner = self._runners.get(key)
                    if runner is not None and runner.failed:
                        await self._discard(runner)  # its requests in flight fail on their own
                        runner = None
                    if runner is not None:
                        runner.refs += 1
                        return runner
                    stale = [r for r in self._runners.values() if r.key[0] == key[0]]
                    if not stale and len(self._runners) < self.settings.effective_max_loaded_models:
                        break
                    victim = min((r for r in stale or self._runners.values() if r.idle), default=None,
                                 key=lambda r: r.last_used)
                    if victim is not None:
                        await self._unload(victim)
                        continue
                    if not waiting:
                        self._enter_queue()
                        waiting = True
                    await cond.wait()
            finally:
                if waiting:
                    self._waiting -= 1
            loop = asyncio.get_running_loop()
            shared = parallel > 1 and self.settings.gen_batching and not spec.embedding and self.engine.batching
            runner = Runner(key=key, spec=spec, model=model, parallel=parallel, sem=asyncio.Semaphore(parallel),
                            ready=loop.create_future(), refs=1, last_used=self.clock.now(), shared=shared)
            self._runners[key] = runner
        loop.create_task(self._load_first(runner))
        return runner

    async def _load_first(self, runner: Runner) -> None:
        try:
            if runner.shared:
                context = await asyncio.to_thread(self.engine.load_batched, runner.spec, runner.parallel)
            else:
                context = await asyncio.to_thread(self.engine.load, runner.spec)
        except BaseException as e:  # noqa: BLE001 - every waiter gets the load error
            log.warning("loading %s failed: %s", runner.model.name.display(), e)
            async with self._setup():
                if self._runners.get(runner.key) is runner:
                    del self._runners[runner.key]
                self._setup().notify_all()
            runner.closed = True
            runner.ready.set_exception(e)
            runner.ready.exception()  # mark retrieved: waiters may all be gone
            return
        runner.contexts.append(context)
        if not runner.shared:
            runner.free.append(context)
        runner.ready.set_result(None)

    async def _load_context(self, runner: Runner) -> EngineModel:
        context = await asyncio.to_thread(self.engine.load, runner.spec)
        runner.contexts.append(context)
        return context

    async def _release_ref(self, runner: Runner, keep_alive: KeepAlive | None, until: float | None = None) -> None:
        cond = self._setup()
        async with cond:
            runner.refs -= 1
            runner.last_used = self.clock.now()
            runner.keep_alive = self._keep_alive(keep_alive)
            runner.expires_at = self._expiry(runner.keep_alive) if until is None else until
            if runner.idle and runner.keep_alive.unload_now:
                await self._unload(runner)
            cond.notify_all()
        assert self._wake is not None
        self._wake.set()
        if self.observer is not None and not runner.closed:
            await self.observer.used(runner)

    def _expiry(self, keep_alive: KeepAlive) -> float:
        return keep_alive.expires_at(self.clock.now())

    async def _discard(self, runner: Runner) -> None:
        """Forget a failed runner now (caller holds the condition); its live contexts are freed
        in the background, since requests may still be on them."""
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        if runner.closed:
            return
        runner.closed = True
        log.warning("runner of %s failed; it is loaded again by the next request", runner.model.name.display())
        for context in runner.contexts:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(context.close))
            self._closing.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._closing.discard)
        if self.observer is not None:
            await self.observer.unloaded(runner)

    async def _unload(self, runner: Runner) -> None:
        """Forget ``runner`` and free its contexts (caller holds the condition)."""
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        if runner.closed:
            return
        runner.closed = True
        contexts, runner.contexts, runner.free = runner.contexts, [], []
        for context in contexts:
            await asyncio.to_thread(context.close)
        log.info("unloaded %s", runner.model.name.display())
        if self.observer is not None:
            await self.observer.unloaded(runner)

    # -- unload, expiry, listing -----------------------------------------------------------------

    async def unload(self, model: Model) -> None:
        """Unload ``model``'s runners now, or each as soon as it is idle."""
        cond = self._setup()
        async with cond:
            for runner in [r for r in self._runners.values() if r.key[0] == model.digest.hex]:
                runner.keep_alive = KeepAlive.UNLOAD_NOW
                if runner.idle:
                    await self._unload(runner)
            cond.notify_all()
        if self.observer is not None:  # loaded here or not, the fleet's keep_alive of it ends
            await self.observer.forget(model.digest.hex)

    async def reap(self) -> float:
        """Unload idle runners past their expiry; return seconds until the next expiry."""
        cond = self._setup()
        now = self.clock.now()
        async with cond:
            for runner in [r for r in self._runners.values() if r.idle and r.expires_at <= now]:
                await self._unload(runner)
            cond.notify_all()
            pending = [r.expires_at - now for r in self._runners.values() if r.idle]
        return min(pending, default=math.inf)

    async def _reap_forever(self) -> None:
        assert self._wake is not None
        while True:
            delay = await self.reap()
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 a cancelled wait_for could wait out its whole timeout
            with suppress(TimeoutError):
                async with asyncio.timeout(min(delay, 60.0) + 0.01):
                    await self._wake.wait()

    def loaded(self) -> list[Runner]:
        return [r for r in self._runners.values() if r.ready.done() and not r.closed and not r.failed]

    def ps(self) -> list[dict[str, Any]]:
        """``/api/ps``: loaded models, the longest remaining time first."""
        rows = []
        now = time.time()  # wall time, as Ollama shows "forever" (now + Go's largest duration)
        for runner in sorted(self.loaded(), key=lambda r: r.expires_at, reverse=True):
            size = sum(c.memory_bytes() for c in runner.contexts)
            name = runner.model.name.display()
            running = runner.parallel - runner.sem._value  # slots held
            rows.append({
                "name": name, "model": name, "size": size, "digest": runner.model.digest.hex,
                "details": runner.model.details(), "expires_at": ps_expires_at(runner.expires_at, now),
                "size_vram": size if any(getattr(c, "on_gpu", False) for c in runner.contexts) else 0,
                "context_length": runner.spec.n_ctx,
                # skyllama's own (clients ignore them): queue visibility per model
                "num_parallel": runner.parallel, "running": running, "queued": max(runner.refs - running, 0),
            })
        return rows

    async def close(self) -> None:
        """Stop the expiry task and unload everything (server shutdown)."""
        await self.embed_batcher.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with suppress(asyncio.CancelledError):
                await self._reaper
        for runner in list(self._runners.values()):
            if self._runners.get(runner.key) is runner:
                del self._runners[runner.key]
            for context in runner.contexts:
                await asyncio.to_thread(context.close)
            runner.contexts = []
