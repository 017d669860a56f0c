"""``RemoteModel``: a model loaded in a runner process, behind the ``EngineModel`` protocol.

Calls block like the in-process engines' (the services run them in worker threads). Generation
items stream back as the child produces them; a ``cancel`` flag that is set reaches the child
within 50 ms (``process.py``), inside prompt evaluation too. Tokenizing is a round trip to the
child, so the last few texts' tokens are kept: a chat prompt is counted (to fit the context) and
then tokenized, and the same text must not cross the socket twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
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
                 cancel: threading.Event | None = None,
                 logprobs: int | None = None) -> Iterator[str | TokenLogprob | Generated]:
        timeouts = self.process.timeouts
        call = self.process.start("generate", timeout=timeouts.prompt, step=timeouts.token, cancel=cancel,
                                  prompt=list(prompt), sampling=wire.sampling_to_wire(sampling), grammar=grammar,
                                  logprobs=logprobs)
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
