"""The llama.cpp engine: load a GGUF, tokenize, generate tokens, embed texts.

This package is the only place that imports ``llama_cpp``. One :class:`LlamaModel` is one
llama.cpp context; it is **not** thread-safe, so the scheduler hands each to one request at a time.
Everything here is blocking: callers run it in a worker thread.

Options and what they do here (``skyllama.options``):

- load: ``num_ctx``, ``num_batch``, ``num_gpu`` (``n_gpu_layers``; -1 = all), ``main_gpu``,
  ``use_mmap``, ``use_mlock``, ``num_thread`` (0 = settings, else physical cores); flash attention
  and the KV cache type come from settings (``OLLAMA_FLASH_ATTENTION``, ``OLLAMA_KV_CACHE_TYPE``).
- sampling: ``seed`` (-1 = random), ``num_predict`` (-1 = until the context is full), ``top_k``,
  ``top_p``, ``min_p``, ``typical_p``, ``repeat_last_n``, ``temperature`` (0 = greedy),
  ``repeat_penalty``, ``presence_penalty``, ``frequency_penalty``, ``mirostat`` (1 or 2) with
  ``mirostat_tau``/``mirostat_eta``, ``stop`` (never emitted, even across tokens), ``num_keep``
  (tokens a context shift keeps; with ``shift`` off a full context ends the generation).
- no effect (``options.NO_EFFECT``): ``penalize_newline``, ``low_vram``, ``f16_kv``,
  ``logits_all``, ``vocab_only``, ``numa``; ``tfs_z`` is accepted but llama.cpp dropped the
  tail-free sampler, so it does nothing either.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar

from ..errors import BadRequest
from .adapters import load_adapters, set_adapters
from .base import (
    Generated,
    LoadSpec,
    Sampling,
    StopMatcher,
    TokenLogprob,
    generation_limit,
    l2_normalized,
    shift_window,
)
from .samplers import token_logprob

_KV_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}
# Packing a few short texts per decode is faster than one big ubatch (attention is quadratic in
# the packed length): measured ~1.7x for all-MiniLM with 64 versus 512 on 2 cores.
EMBED_PACK_TOKENS = 64


class _TemplatelessLlama(llama_cpp.Llama):
    """``Llama`` that never sees the GGUF's chat templates (T-33).

    ``Llama.__init__`` compiles every ``tokenizer.chat_template*`` in the metadata with its own
    Jinja environment, whatever ``chat_format`` says (no time or size limits, constant folding
    at compile time: ``7**(10**7)`` costs seconds of CPU, ``10**100000`` fails every load).
    skyllama renders prompts itself (``templates/jinja.py``), so the metadata it stores here
    leaves those keys out and no chat handler is ever built from them.
    """

    @property  # type: ignore[override]
    def metadata(self) -> dict[str, str]:
        return self._metadata_without_templates

    @metadata.setter
    def metadata(self, value: dict[str, str]) -> None:
        self._metadata_without_templates = {k: v for k, v in value.items()
                                            if not k.startswith("tokenizer.chat_template")}


def physical_cores() -> int:
    count = os.cpu_count() or 1
    return max(1, count // 2) if count > 4 else count


class LlamaModel:
    """One loaded GGUF with one llama.cpp context (use from one thread at a time)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        pooling = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
        self.llm = _TemplatelessLlama(
            spec.path,
            n_ctx=spec.n_ctx,
            n_batch=spec.n_batch,
            n_ubatch=spec.n_batch,  # embeddings abort (GGML_ASSERT) unless n_ubatch == n_batch
            n_gpu_layers=spec.n_gpu_layers,
            main_gpu=spec.main_gpu,
            use_mmap=spec.use_mmap,
            use_mlock=spec.use_mlock,
            n_threads=spec.n_threads or physical_cores(),
            n_threads_batch=spec.n_threads or physical_cores(),
            flash_attn=spec.flash_attn,
            type_k=_KV_TYPES.get(spec.kv_cache_type),
            type_v=_KV_TYPES.get(spec.kv_cache_type) if spec.flash_attn else None,
            embedding=spec.embedding,
            pooling_type=pooling if spec.embedding else llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            chat_format="llama-2",  # a named format: nothing compiled (skyllama renders prompts itself)
            verbose=False,
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self._add_bos = bool(self.llm._model.add_bos_token())
        self._piece_buf = ctypes.create_string_buffer(256)
        self.n_vocab = int(self.llm.n_vocab())
        self.adapters = load_adapters(self.llm._model.model, spec.adapters)  # LoRA (engine/adapters.py)
        set_adapters(self.llm._ctx.ctx, self.adapters)
        self._abort = AbortFlag(self.llm._ctx.ctx)
        # llama.cpp may pad the context beyond num_ctx, but Llama's token buffer holds num_ctx
        self.n_ctx = min(self.llm.n_ctx(), len(self.llm.input_ids))
        self.n_batch = self.llm.n_batch

    # -- tokens ----------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        """Token ids of ``text``; special tokens in it (``<|im_start|>``) are parsed as such."""
        add = self._add_bos if add_special is None else add_special
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add, special=True))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(list(tokens), special=True).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, False)
        return self._piece_buf.raw[:n] if n > 0 else b""

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # -- generation ------------------------------------------------------------------------------

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None,
                 logprobs: int | None = None) -> Iterator[str | TokenLogprob | Generated]:
        """Yield text pieces, then one :class:`Generated`. Stops on EOG, a stop string,
        ``num_predict``, a full context or ``cancel`` (checked between tokens). With
        ``logprobs`` (the number of alternatives, 0-20), a :class:`TokenLogprob` precedes each
        token's text."""
        if not prompt:
            prompt = [self.llm.token_bos()]
        if len(prompt) >= self.n_ctx:  # keep the tail, as Ollama's runner truncates
            prompt = prompt[-(self.n_ctx - 1):]
        limit = generation_limit(sampling, self.n_ctx, len(prompt))
        llm = self.llm
        llm.set_seed(sampling.seed if sampling.seed >= 0 else random.getrandbits(31))
        llm.last_n_tokens_size = sampling.repeat_last_n if sampling.repeat_last_n >= 0 else self.n_ctx
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(sampling.stop)
        tokens: list[int] = []
        reason = "length"
        start = first = time.perf_counter_ns()
        if limit <= 0:
            yield Generated(reason, tokens, len(prompt), 0, 0, 0)
            return
        window = list(prompt)  # what the context holds: the prompt, then each new token
        done = False
        while not done:
            # llama-cpp-python 0.3.36's KV prefix reuse replays the last prompt token wrongly (greedy
            # output changes on a repeated prompt), so every pass starts from a clean cache.
            llm.reset()
            gen = llm.generate(  # a copy: Llama.generate reuses the list it is given
                list(window), top_k=sampling.top_k, top_p=sampling.top_p, min_p=sampling.min_p,
                typical_p=sampling.typical_p, temp=sampling.temperature, repeat_penalty=sampling.repeat_penalty,
                frequency_penalty=sampling.frequency_penalty, presence_penalty=sampling.presence_penalty,
                mirostat_mode=sampling.mirostat, mirostat_tau=sampling.mirostat_tau,
                mirostat_eta=sampling.mirostat_eta,
                grammar=self.grammar(grammar) if grammar else None,
            )
            done = True
            self._abort.clear()
            try:
                for token in gen:
                    if not tokens:
                        first = time.perf_counter_ns()
                    if self.is_eog(token):
                        reason = "stop"
                        break
                    tokens.append(token)
                    window.append(token)
                    if logprobs is not None:
                        yield self._logprob(token, logprobs)
                    text, stopped = stops.feed(decoder.decode(self._piece(token)))
                    if text:
                        yield text
                    if stopped:
                        reason = "stop"
                        break
                    if len(tokens) >= limit or (cancel is not None and cancel.is_set()):
                        break
                    if len(window) >= self.n_ctx:  # full: shift (re-evaluating what is kept) or end
                        if sampling.shift:
                            window = shift_window(window, sampling.num_keep)
                            done = False
                        break
            except RuntimeError:  # llama_decode returned 2: interrupted inside prompt evaluation
                if not self._abort.is_set():
                    raise
                reason = "cancel"
            finally:
                gen.close()
        if reason != "stop":
            tail = stops.flush() + decoder.decode(b"", final=True)
            if tail:
                yield tail
        end = time.perf_counter_ns()
        yield Generated(reason, tokens, len(prompt), first - start, len(tokens), max(end - first, 1))

    def _logprob(self, token: int, top: int) -> TokenLogprob:
        """The log-probabilities of ``token`` from the last decoded row."""
        return token_logprob(self.llm._ctx.ctx, -1, int(self.llm.n_vocab()), token, top, self._piece)

    def grammar(self, gbnf: str) -> LlamaGrammar:
        """The grammar, refused with a 400 when llama.cpp's parser rejects it: llama-cpp-python
        would hand the sampler a NULL grammar, and the first token would segfault."""
        check_grammar(self._vocab, gbnf)
        return LlamaGrammar.from_string(gbnf, verbose=False)

    def interrupt(self) -> None:
        """Stop the running ``llama_decode`` at its next graph node (from any thread)."""
        self._abort.set()

    # -- embeddings ------------------------------------------------------------------------------

    def embed(self, texts: list[str], *, normalize: bool, truncate: bool = True) -> tuple[list[list[float]], int]:
        """One vector per text and the total token count."""
        vectors, counts = self.embed_counted(texts, normalize=normalize, truncate=truncate)
        return vectors, sum(counts)

    def embed_counted(self, texts: list[str], *, normalize: bool,
                      truncate: bool = True) -> tuple[list[list[float]], list[int]]:
        """One vector and one token count per text. Every length is checked against the
        context before llama.cpp sees it: an oversized batch aborts the whole process."""
        self._abort.clear()  # a cancel that came after the last generation ended
        limit = min(self.n_ctx, self.n_batch)
        batches: list[list[int]] = []
        for text in texts:
            tokens = self.tokenize(text, add_special=True)
            if len(tokens) > limit:
                if not truncate:
                    raise BadRequest("the input length exceeds the context length")
                tokens = tokens[:limit]
            batches.append(tokens or [self.llm.token_bos()])
        counts = [len(t) for t in batches]
        if self.spec.embedding:
            vectors = self._embed_packed(batches)
        else:
            vectors = self._embed_causal(batches)
        if normalize:
            vectors = [l2_normalized(v) for v in vectors]
        return vectors, counts

    def _embed_packed(self, seqs: list[list[int]]) -> list[list[float]]:
        llm, ctx = self.llm, self.llm._ctx
        n_embd = llm.n_embd()
        n_seq_max = llm.context_params.n_seq_max
        out: list[list[float]] = []
        group: list[list[int]] = []

        def flush() -> None:
            if not group:
                return
            ctx.kv_cache_clear()
            llm._batch.reset()
            for i, seq in enumerate(group):
                llm._batch.add_sequence(seq, i, True)
            ctx.decode(llm._batch)
            for i in range(len(group)):
                out.append(list(llama_cpp.llama_get_embeddings_seq(ctx.ctx, i)[:n_embd]))
            group.clear()

        size = 0
        for seq in seqs:
            if group and (size + len(seq) > max(EMBED_PACK_TOKENS, len(seq)) or len(group) >= n_seq_max):
                flush()
                size = 0
            group.append(seq)
            size += len(seq)
        flush()
        llm._batch.reset()
        ctx.kv_cache_clear()
        return out

    def _embed_causal(self, seqs: list[list[int]]) -> list[list[float]]:
        """A generative model embeds one sequence at a time (mean pooling, set at load)."""
        llm, ctx = self.llm, self.llm._ctx
        n_embd = llm.n_embd()
        out: list[list[float]] = []
        llama_cpp.llama_set_embeddings(ctx.ctx, True)
        try:
            for seq in seqs:
                ctx.kv_cache_clear()
                llm._batch.reset()
                llm._batch.add_sequence(seq, 0, True)
                ctx.decode(llm._batch)
                out.append(list(llama_cpp.llama_get_embeddings_seq(ctx.ctx, 0)[:n_embd]))
        finally:
            llama_cpp.llama_set_embeddings(ctx.ctx, False)
            llm._batch.reset()
            ctx.kv_cache_clear()
            llm.n_tokens = 0  # the prompt cache is gone
        return out

    # -- lifetime --------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Weights plus the KV cache, roughly what Ollama reports as ``size``."""
        model = self.llm._model
        n_layer = llama_cpp.llama_model_n_layer(model.model)
        kv = 2 * self.n_ctx * n_layer * model.n_embd() * (1 if self.spec.kv_cache_type != "f16" else 2)
        return int(model.size()) + kv

    def close(self) -> None:
        """Free the context and the weights."""
        self.llm.close()


def check_grammar(vocab: Any, gbnf: str, root: str = "root") -> None:
    """Raise :class:`BadRequest` unless llama.cpp's own parser accepts ``gbnf``."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), root.encode("utf-8"))
    if not sampler:
        raise BadRequest("invalid format: llama.cpp could not parse the grammar built from it")
    llama_cpp.llama_sampler_free(sampler)


class AbortFlag:
    """llama.cpp's abort callback, polled between graph nodes, reading a flag without the GIL.

    The callback is libc's ``strlen`` over a two-byte ``[flag, NUL]`` buffer: it returns 1 when
    the flag is set and 0 when not, which is the ``bool`` llama.cpp expects. A Python callback
    would take the GIL hundreds of times per token; this one costs nothing and still lets a
    cancel stop a long prompt evaluation mid-way.
    """

    def __init__(self, ctx: Any) -> None:
        self._buffer = ctypes.create_string_buffer(2)
        strlen = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value or 0
        self._callback = llama_cpp.ggml_abort_callback(strlen)
        llama_cpp.llama_set_abort_callback(ctx, self._callback, ctypes.cast(self._buffer, ctypes.c_void_p))

    def set(self) -> None:
        self._buffer[0] = b"\x01"

    def clear(self) -> None:
        self._buffer[0] = b"\x00"

    def is_set(self) -> bool:
        return self._buffer[0] != b"\x00"


def supports_gpu() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def load_llama(spec: LoadSpec) -> LlamaModel:
    """The default loader the scheduler uses (blocking: call it in a thread)."""
    return LlamaModel(spec)
