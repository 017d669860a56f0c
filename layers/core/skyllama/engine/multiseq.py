"""Batched decoding: several generations share one llama.cpp context (``OLLAMA_NUM_PARALLEL`` > 1).

One :class:`MultiSeqModel` is one context with ``n_seq_max`` = the runner's parallel slots and
``n_ctx`` = slots x the per-request ``num_ctx`` (as Ollama sizes it), one KV stream per sequence.
A decode thread owns the context. Each step it builds one ``llama_batch`` holding the next token
of every generating sequence, then prompt chunks of newly admitted ones up to ``n_batch``, calls
``llama_decode`` once and samples every sequence with its own sampler chain. On two cores eight
sequences decode in little more time than one: the weights are read once per step, not per token.

- Callers (any thread) call :meth:`generate` exactly as on :class:`~.llama.LlamaModel` and get
  the same items (text, :class:`TokenLogprob`, then :class:`Generated`) from their own queue.
- Every option is per sequence: the sampler chain is built as llama-cpp-python's
  ``Llama._init_sampler`` builds it (penalties, grammar, then greedy, mirostat or
  top_k/typical/top_p/min_p/temp/dist with the seed), so a seed gives the tokens the
  single-sequence path gives; ``num_predict``, stop strings, ``format`` grammars and logprobs too.
  Nothing falls back to another path.
- A finished, cancelled or abandoned sequence leaves at the next step and its id is free again;
  its prompt's KV cells stay: the prompt cache. Only prompt cells count: a generated token's cell
  was computed alone, and llama.cpp's logits are not bit-identical between one token and a batch
  (its own server says so of ``cache_prompt``), so reusing them would change greedy answers;
  a chat's next turn evaluates the last answer and the new message. A new request takes the free sequence whose cells share
  the longest prefix with its prompt (``prefix_cache.py``); the cells past that prefix are removed
  with ``llama_memory_seq_rm`` and only the rest of the prompt is evaluated. Batch-mates' cells are
  never touched. A failed or aborted decode forgets the cells of every sequence it carried.
- A cancel stops a running ``llama_decode`` (prompt evaluation) only when every sequence in it
  is cancelled, so batch-mates never lose a step.
- Embeddings of a generative model run on a plain context of their own, loaded on first need.
"""

from __future__ import annotations

import codecs
import collections
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import llama_cpp
from llama_cpp import _internals

from .adapters import set_adapters
from .base import Generated, LoadSpec, Sampling, StopMatcher, TokenLogprob, generation_limit, shift_counts
from .llama import AbortFlag, LlamaModel
from .prefix_cache import REFILL_CHUNK, SlotCache, chunk_size
from .samplers import sampler_chain, token_logprob

_HOLDER_CTX = 64  # the tokenizer's own context: weights and vocabulary, no real KV cache


@dataclass(eq=False)
class _Seq:
    """One generation in the shared context (mutated only by the decode thread once admitted)."""

    prompt: list[int]
    sampler: Any  # llama_sampler_p, a chain owned by this sequence
    limit: int
    logprobs: int | None
    stops: StopMatcher
    cancel: threading.Event | None
    shift: bool = False  # a full KV stream drops half its history (Ollama's context shift)
    num_keep: int = 4
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    seq_id: int = -1
    n_past: int = 0  # tokens of this sequence in the KV cache
    tokens: list[int] = field(default_factory=list)
    started: int = 0
    first: int = 0
    gone: bool = False  # the consumer stopped reading
    prefilled: bool = False  # the prompt is in (a context shift lowers n_past below its length)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))

    @property
    def prefilling(self) -> bool:
        return not self.prefilled and self.n_past < len(self.prompt)


class _Aborted(Exception):
    """llama_decode stopped by the abort flag: every sequence of the step was cancelled."""


class MultiSeqModel:
    """A generative model whose :meth:`generate` may be called from several threads at once."""

    def __init__(self, spec: LoadSpec, n_seq: int) -> None:
        self.spec = spec
        self.n_seq = max(1, n_seq)
        # Tokenizer, vocabulary and the llama-cpp-python context parameters (threads, flash
        # attention, KV type) come from a plain model with a tiny context; the shared context is
        # built from a copy of its parameters, so both paths run the same configuration.
        self.holder = LlamaModel(replace(spec, n_ctx=_HOLDER_CTX, n_batch=min(spec.n_batch, _HOLDER_CTX)))
        llm = self.holder.llm
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = spec.n_ctx * self.n_seq
        params.n_batch = params.n_ubatch = spec.n_batch
        params.n_seq_max = self.n_seq
        # A KV stream per sequence: each sequence's attention sees only its own num_ctx cells, as
        # in a context of its own, so greedy answers stay identical to the single-sequence path.
        # A unified buffer measured ~15% faster on CPU but its answers drift after 20-40 tokens.
        params.kv_unified = False
        params.embeddings = False
        params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        set_adapters(self._ctx.ctx, self.holder.adapters)  # the holder loaded the model's LoRA adapters
        self.n_ctx = min(spec.n_ctx, int(llama_cpp.llama_n_ctx_seq(self._ctx.ctx)))
        self.n_batch = spec.n_batch
        self._n_vocab = llm.n_vocab()
        self.n_vocab = int(self._n_vocab)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._cond = threading.Condition()
        self._waiting: collections.deque[_Seq] = collections.deque()
        self._active: list[_Seq] = []
        self._free_ids = list(range(self.n_seq - 1, -1, -1))
        self._cache = SlotCache(self.n_seq, enabled=spec.prompt_cache)
        self._abort = AbortFlag(self._ctx.ctx)
        self.reused_tokens = 0  # prompt tokens taken from the cache instead of evaluated (tests read it)
        self.refilled_tokens = 0  # answer tokens evaluated into the cache while idle
        self._closed = False
        self._plain: LlamaModel | None = None
        self._plain_lock = threading.Lock()
        self.steps = 0  # llama_decode calls (tests and benchmarks read it)
        self.max_batch_seqs = 0  # the most sequences one step carried
        self._thread = threading.Thread(target=self._run, name="skyllama-multiseq", daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        """Sequences admitted or waiting for a free sequence id."""
        with self._cond:
            return len(self._active) + len(self._waiting)

    # -- tokens (vocabulary only: safe from any thread) -------------------------------------------

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        return self.holder.tokenize(text, add_special=add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.holder.detokenize(tokens)

    # -- generation ------------------------------------------------------------------------------

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None,
                 logprobs: int | None = None) -> Iterator[str | TokenLogprob | Generated]:
        """As :meth:`LlamaModel.generate`, decoded in batches with the other callers' sequences."""
        if not prompt:
            prompt = [self.holder.llm.token_bos()]
        if len(prompt) >= self.n_ctx:  # keep the tail, as Ollama's runner truncates
            prompt = prompt[-(self.n_ctx - 1):]
        limit = generation_limit(sampling, self.n_ctx, len(prompt))
        if limit <= 0:
            yield Generated("length", [], len(prompt), 0, 0, 0)
            return
        shift = sampling.shift and bool(llama_cpp.llama_memory_can_shift(self._mem))
        if sampling.shift and not shift:
            limit = generation_limit(replace(sampling, shift=False), self.n_ctx, len(prompt))
        seq = _Seq(list(prompt), self._sampler(sampling, grammar), limit, logprobs, StopMatcher(sampling.stop), cancel,
                   shift=shift, num_keep=sampling.num_keep)
        with self._cond:
            if self._closed:
                llama_cpp.llama_sampler_free(seq.sampler)
                raise RuntimeError("the model was unloaded")
            self._waiting.append(seq)
            self._cond.notify()
        try:
            while True:
                item = seq.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Generated):
                    return
        finally:
            seq.gone = True

    def _sampler(self, sampling: Sampling, grammar: str | None) -> Any:
        return sampler_chain(sampling, grammar, vocab=self.holder._vocab, n_vocab=self._n_vocab, n_ctx=self.n_ctx)

    # -- the decode thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._active and not self._waiting and not self._cache.refills:
                    self._cond.wait()
                if self._closed:
                    break
                for seq in [s for s in self._waiting if s.gone or (s.cancel is not None and s.cancel.is_set())]:
                    self._waiting.remove(seq)  # cancelled before it got a sequence id
                    llama_cpp.llama_sampler_free(seq.sampler)
                    seq.out.put(Generated("length", [], len(seq.prompt), 0, 0, 0))
                while self._waiting and self._free_ids:
                    seq = self._waiting.popleft()
                    seq.seq_id, keep = self._cache.choose(self._free_ids, seq.prompt)
                    self._free_ids.remove(seq.seq_id)
                    self._reuse(seq, keep)
                    seq.started = seq.first = time.perf_counter_ns()
                    self._active.append(seq)
            for seq in list(self._active):
                if seq.gone or (seq.cancel is not None and seq.cancel.is_set()):
                    self._finish(seq, "length")
            if not self._active:
                if self._cache.refills:  # idle: evaluate a finished answer into its slot's cache
                    self._refill()
                continue
            try:
                self._step()
            except _Aborted:  # every sequence in the step was cancelled: they end, their cells are gone
                for seq in list(self._active):
                    self._finish(seq, "length", forget=True)
            except Exception as e:  # noqa: BLE001 - every sequence of the step gets the error
                for seq in list(self._active):
                    seq.out.put(e)
                    self._drop(seq, forget=True)
        with self._cond:
            pending = list(self._waiting) + self._active
            self._waiting.clear()
        for seq in pending:
            seq.out.put(RuntimeError("the model was unloaded"))
            if seq in self._active:
                self._drop(seq, forget=True)
            else:
                llama_cpp.llama_sampler_free(seq.sampler)

    def _step(self) -> None:
        """One ``llama_decode``: a token per generating sequence, then prompt chunks."""
        batch = self._batch.batch
        n = 0
        rows: list[tuple[_Seq, int]] = []

        def put(seq: _Seq, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, seq.n_past, 1
            batch.seq_id[n][0] = seq.seq_id
            batch.logits[n] = logits
            if logits:
                rows.append((seq, n))
            if seq.prefilling:  # a prompt token: its cell is what an uncached prompt evaluation computes
                self._cache.add(seq.seq_id, token)
            seq.n_past += 1
            n += 1

        for seq in self._active:
            if not seq.prefilling:
                put(seq, seq.tokens[-1], True)
        # One prompt per step: prompts of several sequences in one batch are split by llama.cpp
        # into ubatches that give slightly different floats (greedy answers drift); one prompt
        # beside single decode tokens gives the single-sequence path's logits.
        filling = next((seq for seq in self._active if seq.prefilling), None)
        if filling is not None:
            for _ in range(chunk_size(len(filling.prompt) - filling.n_past, self.n_batch - n)):
                put(filling, filling.prompt[filling.n_past], filling.n_past == len(filling.prompt) - 1)
        batch.n_tokens = n
        if n == 0:
            return
        if not self._all_cancelled():
            self._abort.clear()
        code = llama_cpp.llama_decode(self._ctx.ctx, batch)
        if code == 2 and self._abort.is_set():
            self._abort.clear()
            raise _Aborted
        if code != 0:
            raise RuntimeError(f"llama_decode failed ({code})")
        self.steps += 1
        self.max_batch_seqs = max(self.max_batch_seqs, len({s.seq_id for s, _ in rows}))
        for seq, row in rows:
            self._sample(seq, row)

    def _sample(self, seq: _Seq, row: int) -> None:
        token = int(llama_cpp.llama_sampler_sample(seq.sampler, self._ctx.ctx, row))
        if not seq.tokens:
            seq.first = time.perf_counter_ns()
        if self.holder.is_eog(token):
            self._finish(seq, "stop")
            return
        seq.tokens.append(token)
        if seq.logprobs is not None:
            seq.out.put(self._logprob(row, token, seq.logprobs))
        text, stopped = seq.stops.feed(seq.decoder.decode(self.holder._piece(token)))
        if text:
            seq.out.put(text)
        if stopped:
            self._finish(seq, "stop")
        elif len(seq.tokens) >= seq.limit:
            self._finish(seq, "length")
        elif seq.n_past >= self.n_ctx:  # the next token has no cell left
            if seq.shift:
                self._shift(seq)
            else:
                self._finish(seq, "length")

    def _reuse(self, seq: _Seq, keep: int) -> None:
        """Start ``seq`` after the first ``keep`` cells of its slot (they hold its prompt's start)."""
        if not llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, keep, -1):  # a partial removal refused
            llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
            keep = 0
        self._cache.keep(seq.seq_id, keep)
        seq.n_past = keep
        self.reused_tokens += keep

    def _refill(self) -> None:
        """One refill step (``prefix_cache.py``): a finished answer's tokens evaluated again as a
        prompt is, in place of the cells its generation computed one at a time."""
        step = self._cache.next_refill(min(self.n_batch, REFILL_CHUNK))
        if step is None:
            return
        slot, pos, chunk = step
        llama_cpp.llama_memory_seq_rm(self._mem, slot, pos, -1)
        batch = self._batch.batch
        for i, token in enumerate(chunk):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos + i, 1
            batch.seq_id[i][0] = slot
            batch.logits[i] = False
        batch.n_tokens = len(chunk)
        self._abort.clear()
        if llama_cpp.llama_decode(self._ctx.ctx, batch) != 0:
            llama_cpp.llama_memory_seq_rm(self._mem, slot, -1, -1)
            self._cache.forget(slot)
            return
        self.refilled_tokens += len(chunk)
        for token in chunk:
            self._cache.add(slot, token)

    def _all_cancelled(self) -> bool:
        active = list(self._active)  # read from other threads too (interrupt)
        return bool(active) and all(s.gone or (s.cancel is not None and s.cancel.is_set()) for s in active)

    def interrupt(self) -> None:
        """Stop the running ``llama_decode`` if every sequence in it is cancelled (from any thread)."""
        if self._all_cancelled():
            self._abort.set()

    def _shift(self, seq: _Seq) -> None:
        """Context shift in place: drop the oldest half after ``num_keep`` from this sequence's
        KV cells and move the newer cells back (RoPE positions are adjusted by llama.cpp)."""
        keep, discard = shift_counts(seq.n_past, seq.num_keep)
        llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, keep, keep + discard)
        llama_cpp.llama_memory_seq_add(self._mem, seq.seq_id, keep + discard, seq.n_past, -discard)
        self._cache.shift(seq.seq_id, keep)
        seq.n_past -= discard
        seq.prefilled = True

    def _logprob(self, row: int, token: int, top: int) -> TokenLogprob:
        return token_logprob(self._ctx.ctx, row, int(self._n_vocab), token, top, self.holder._piece)

    def _finish(self, seq: _Seq, reason: str, *, forget: bool = False) -> None:
        if reason != "stop":
            tail = seq.stops.flush() + seq.decoder.decode(b"", final=True)
            if tail:
                seq.out.put(tail)
        end = time.perf_counter_ns()
        seq.out.put(Generated(reason, seq.tokens, len(seq.prompt), seq.first - seq.started, len(seq.tokens),
                              max(end - seq.first, 1)))
        if not forget:
            self._cache.answered(seq.seq_id, len(seq.prompt), seq.tokens)
        self._drop(seq, forget=forget)

    def _drop(self, seq: _Seq, *, forget: bool = False) -> None:
        """``seq`` leaves: its sampler is freed and its id is free again; its KV cells stay as the
        prompt cache unless ``forget`` (a failed decode left them unknown) (decode thread only)."""
        if forget:
            llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
            self._cache.forget(seq.seq_id)
        llama_cpp.llama_sampler_free(seq.sampler)
        with self._cond:
            self._active.remove(seq)
            self._free_ids.append(seq.seq_id)

    # -- embeddings, size, lifetime --------------------------------------------------------------

    def _plain_model(self) -> LlamaModel:
        if self._plain is None:
            self._plain = LlamaModel(self.spec)
        return self._plain

    def embed(self, texts: list[str], *, normalize: bool, truncate: bool = True) -> tuple[list[list[float]], int]:
        with self._plain_lock:
            return self._plain_model().embed(texts, normalize=normalize, truncate=truncate)

    def embed_counted(self, texts: list[str], *, normalize: bool,
                      truncate: bool = True) -> tuple[list[list[float]], list[int]]:
        with self._plain_lock:
            return self._plain_model().embed_counted(texts, normalize=normalize, truncate=truncate)

    def memory_bytes(self) -> int:
        """Weights plus the shared KV cache (every sequence's share)."""
        model = self.holder.llm._model
        n_layer = llama_cpp.llama_model_n_layer(model.model)
        per_cell = 2 * n_layer * model.n_embd() * (1 if self.spec.kv_cache_type != "f16" else 2)
        return int(model.size()) + per_cell * self.n_ctx * self.n_seq

    def close(self) -> None:
        """Stop the decode thread (pending callers get an error) and free everything."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._batch.close()
        self._ctx.close()
        with self._plain_lock:
            if self._plain is not None:
                self._plain.close()
        self.holder.close()


def load_multiseq(spec: LoadSpec, n_seq: int) -> MultiSeqModel:
    """The loader the scheduler uses for batched runners (blocking: call it in a thread)."""
    return MultiSeqModel(spec, n_seq)


