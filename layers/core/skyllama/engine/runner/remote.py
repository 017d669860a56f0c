"""``RemoteModel``: a model loaded in a runner process, behind the ``EngineModel`` protocol.

Calls block like the in-process engines' (the services run them in worker threads). Generation
items stream back as the child produces them; a ``cancel`` flag that is set reaches the child
within 50 ms (``process.py``), inside prompt evaluation too. Tokenizing is a round trip to the
child, so the last few texts' tokens are kept: a chat prompt is counted (to fit the context) and
then tokenized, and the same text must not cross the socket twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from ...errors import RunnerFailed
from ..base import Generated, LoadSpec, Sampling, TokenLogprob
from . import wire
from .process import RunnerProcess

_TOKEN_CACHE = 16  # texts whose tokens are kept


class RemoteModel:
    """One model in one runner process (plain, or batched with ``n_seq`` sequences)."""

    def __init__(self, process: RunnerProcess, spec: LoadSpec, n_seq: int = 0) -> None:
        self.process = process
        self.spec = spec
        process.label = spec.name or spec.path
        loaded = process.request("load", timeout=process.timeouts.load, spec=wire.spec_to_wire(spec),
                                 n_seq=n_seq)["ok"]
        self.n_ctx: int = int(loaded["n_ctx"])
        self.n_vocab: int | None = loaded.get("n_vocab")
        self._memory = int(loaded["memory"])
        self._tokens: OrderedDict[tuple[str, bool | None], list[int]] = OrderedDict()
        self._tokens_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.alive

    @property
    def on_gpu(self) -> bool:
        return self.process.gpu and self.spec.n_gpu_layers != 0

    # -- tokens -----------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        key = (text, add_special)
        with self._tokens_lock:
            cached = self._tokens.get(key)
            if cached is not None:
                self._tokens.move_to_end(key)
                return list(cached)
        tokens: list[int] = self.process.request("tokenize", texts=[text], add_special=add_special)["ok"][0]
        with self._tokens_lock:
            self._tokens[key] = tokens
            while len(self._tokens) > _TOKEN_CACHE:
                self._tokens.popitem(last=False)
        return list(tokens)

    def detokenize(self, tokens: list[int]) -> str:
        text: str = self.process.request("detokenize", tokens=list(tokens))["ok"]
        return text

    def stats(self) -> dict[str, int]:
        """The child engine's counters: ``steps``, ``max_batch_seqs``, ``active`` (batched models)."""
        counters: dict[str, int] = self.process.request("stats")["ok"]
        return counters

    # -- generation and embeddings ----------------------------------------------------------------

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None, logprobs: int | None = None,
                 images: Sequence[bytes] | None = None) -> Iterator[str | TokenLogprob | Generated]:
        timeouts = self.process.timeouts
        call = self.process.start("generate", timeout=timeouts.prompt, step=timeouts.token, cancel=cancel,
                                  prompt=list(prompt), sampling=wire.sampling_to_wire(sampling), grammar=grammar,
                                  logprobs=logprobs, **wire.images_to_wire(images))
        try:
            while True:
                reply = call.get()
                if "item" in reply:
                    yield wire.item_from_wire(reply["item"])
                elif "done" in reply:
                    yield wire.generated_from_wire(reply["done"])
                    return
                else:
                    raise wire.error_from_wire(reply.get("error") or {})
        finally:
            self.process.abandon(call)

    async def astream(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                      cancel: threading.Event | None = None,
                      logprobs: int | None = None,
                      images: Sequence[bytes] | None = None) -> AsyncIterator[str | TokenLogprob | Generated]:
        """:meth:`generate` for the event loop: the reader thread hands each item straight to the
        loop, with no thread of the caller's in between (a thread woken per token takes a core
        from llama.cpp's own threads). Text that piles up while the loop is busy comes out as one."""
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[Any] = asyncio.Queue()
        timeouts = self.process.timeouts

        def sink(reply: Any) -> None:  # on the reader thread
            try:
                loop.call_soon_threadsafe(replies.put_nowait, reply)
            except RuntimeError:  # the loop is gone (server shutdown): nobody is waiting any more
                pass

        call = self.process.start("generate", timeout=timeouts.prompt, step=timeouts.token, cancel=cancel, sink=sink,
                                  prompt=list(prompt), sampling=wire.sampling_to_wire(sampling), grammar=grammar,
                                  logprobs=logprobs, **wire.images_to_wire(images))
        try:
            while True:
                reply = await replies.get()
                if isinstance(reply, BaseException):
                    raise reply
                if "item" not in reply:
                    if "done" in reply:
                        yield wire.generated_from_wire(reply["done"])
                        return
                    raise wire.error_from_wire(reply.get("error") or {})
                item = wire.item_from_wire(reply["item"])
                while isinstance(item, str) and not replies.empty():
                    following = replies._queue[0]  # type: ignore[attr-defined]
                    if isinstance(following, BaseException) or "text" not in following.get("item", {}):
                        break
                    item += str(replies.get_nowait()["item"]["text"])
                yield item
        finally:
            if not call.ended.is_set():
                await _settled(asyncio.to_thread(self.process.abandon, call))

    def embed(self, texts: list[str], *, normalize: bool, truncate: bool = True) -> tuple[list[list[float]], int]:
        vectors, counts = self.embed_counted(texts, normalize=normalize, truncate=truncate)
        return vectors, sum(counts)

    def embed_counted(self, texts: list[str], *, normalize: bool,
                      truncate: bool = True) -> tuple[list[list[float]], list[int]]:
        call = self.process.start("embed", timeout=self.process.timeouts.prompt, texts=list(texts),
                                  normalize=normalize, truncate=truncate)
        reply = call.get()
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        result: dict[str, Any] = reply["ok"]
        vectors = wire.vectors_from_blob(result["vectors"], reply.get("blob", b""))
        counts = [int(c) for c in result["counts"]]
        if len(vectors) != len(texts) or len(counts) != len(texts):
            raise RunnerFailed("the model runner sent a malformed embedding")
        return vectors, counts

    # -- lifetime ---------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        return self._memory

    def close(self) -> None:
        self.process.close()


async def _settled(work: Awaitable[None]) -> None:
    """Wait for ``work`` even while being cancelled (the runner's slot is ours until the call
    ended), then let the cancellation go on."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
