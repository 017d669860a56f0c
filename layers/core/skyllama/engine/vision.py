"""Images through a vision projector: llama.cpp's ``mtmd`` library on a plain llama.cpp context.

A model whose manifest has a projector layer loads as :class:`VisionModel` (``LoadSpec.projector``):
one sequence at a time, as Ollama's runner serves a multimodal model. The server renders the
prompt with Ollama's ``[img-N]`` markers and tokenizes the text between them; in the token list
an image is the placeholder ``-(N + 1)`` (:func:`image_placeholder`), and its bytes come with the
call. Here each image goes through ``mtmd_tokenize`` (the projector may wrap it in begin/end
tokens of its own), is encoded by the CLIP graph and decoded into the context at its position;
text runs are evaluated as usual. Generation then continues exactly as llama-cpp-python's
``MTMDChatHandler`` continues (``Llama.generate`` on the evaluated prompt), so the same files and
image give the same tokens. Requests without images take :class:`LlamaModel`'s path unchanged.
"""

from __future__ import annotations

import codecs
import ctypes
import random
import threading
import time
from collections.abc import Iterator, Sequence

import llama_cpp
from llama_cpp import mtmd_cpp

from ..errors import BadRequest, RunnerFailed
from .base import Generated, LoadSpec, Sampling, StopMatcher, TokenLogprob, image_placeholder
from .llama import LlamaModel, physical_cores, supports_gpu

__all__ = ["VisionModel", "image_placeholder", "load_vision", "split_prompt"]


def split_prompt(prompt: Sequence[int]) -> list[list[int] | int]:
    """Runs of text tokens and image indexes (:func:`image_placeholder` undone), in order."""
    parts: list[list[int] | int] = []
    for token in prompt:
        if token < 0:
            parts.append(-token - 1)
        elif parts and isinstance(parts[-1], list):
            parts[-1].append(token)
        else:
            parts.append([token])
    return parts


class VisionModel(LlamaModel):
    """A generative model with its projector (use from one thread at a time)."""

    def __init__(self, spec: LoadSpec) -> None:
        super().__init__(spec)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = spec.n_gpu_layers != 0 and supports_gpu()
        params.print_timings = False
        params.n_threads = spec.n_threads or physical_cores()
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if spec.flash_attn
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        self._mtmd = mtmd_cpp.mtmd_init_from_file(spec.projector.encode("utf-8"), self.llm._model.model, params)
        if not self._mtmd:
            self.llm.close()
            raise RunnerFailed("llama.cpp could not load the vision projector (mtmd_init_from_file)")
        self._marker = mtmd_cpp.mtmd_default_marker()

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None, logprobs: int | None = None,
                 images: Sequence[bytes] | None = None) -> Iterator[str | TokenLogprob | Generated]:
        """As :meth:`LlamaModel.generate`; with ``images``, the placeholders in ``prompt`` are
        those images. A full context ends the generation (no context shift over an image)."""
        if not images or not any(t < 0 for t in prompt):
            yield from super().generate([t for t in prompt if t >= 0], sampling, grammar=grammar,
                                        cancel=cancel, logprobs=logprobs)
            return
        start = time.perf_counter_ns()
        self._abort.clear()
        llm = self.llm
        llm.reset()
        llm._ctx.kv_cache_clear()
        for part in split_prompt(prompt):
            if isinstance(part, int):
                if part >= len(images):
                    raise BadRequest(f"invalid image index: {part}")
                self._eval_image(images[part])
            else:
                self._room(len(part))
                llm.eval(part)
        n_prompt = llm.n_tokens
        yield from self._continue(llm.input_ids[:n_prompt].tolist(), sampling, grammar, cancel, logprobs, start)

    def _room(self, n: int) -> None:
        if self.llm.n_tokens + n > self.n_ctx:
            raise BadRequest("the input length exceeds the context length")

    def _eval_image(self, data: bytes) -> None:
        """Tokenize one image with ``mtmd`` and decode its chunks into the context."""
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = mtmd_cpp.mtmd_helper_bitmap_init_from_buf(self._mtmd, buf, len(data), False)
        if not bitmap:
            raise BadRequest("failed to decode image: not a supported image format")
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            text = mtmd_cpp.mtmd_input_text()
            text.text, text.text_len = self._marker, len(self._marker)
            text.add_special, text.parse_special = False, True
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd_cpp.mtmd_tokenize(self._mtmd, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                raise BadRequest("failed to process image")
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
                if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    count = ctypes.c_size_t()
                    pointer = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    tokens = [int(pointer[j]) for j in range(count.value)]
                    self._room(len(tokens))
                    self.llm.eval(tokens)
                    continue
                self._room(mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk))
                n_past = llama_cpp.llama_pos(0)
                code = mtmd_cpp.mtmd_helper_eval_chunk_single(
                    self._mtmd, self.llm._ctx.ctx, chunk, llama_cpp.llama_pos(self.llm.n_tokens),
                    llama_cpp.llama_seq_id(0), self.llm.n_batch, False, ctypes.byref(n_past))
                if code != 0:
                    raise RunnerFailed(f"llama.cpp could not evaluate the image (code {code})")
                self.llm.n_tokens = n_past.value
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            mtmd_cpp.mtmd_bitmap_free(bitmap)

    def _continue(self, window: list[int], sampling: Sampling, grammar: str | None,
                  cancel: threading.Event | None, logprobs: int | None,
                  start: int) -> Iterator[str | TokenLogprob | Generated]:
        """Generate after an evaluated multimodal prompt: ``Llama.generate`` finds the whole
        prompt in its cache (the image positions included) and evaluates only the last token
        again, as it does after ``MTMDChatHandler``'s evaluation."""
        llm = self.llm
        llm.set_seed(sampling.seed if sampling.seed >= 0 else random.getrandbits(31))
        llm.last_n_tokens_size = sampling.repeat_last_n if sampling.repeat_last_n >= 0 else self.n_ctx
        limit = self.n_ctx - len(window)
        if sampling.num_predict >= 0:
            limit = min(limit, sampling.num_predict)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(sampling.stop)
        tokens: list[int] = []
        reason = "length"
        first = time.perf_counter_ns()
        gen = llm.generate(
            window, top_k=sampling.top_k, top_p=sampling.top_p, min_p=sampling.min_p,
            typical_p=sampling.typical_p, temp=sampling.temperature, repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty, presence_penalty=sampling.presence_penalty,
            mirostat_mode=sampling.mirostat, mirostat_tau=sampling.mirostat_tau, mirostat_eta=sampling.mirostat_eta,
            grammar=self.grammar(grammar) if grammar else None,
        )
        try:
            for token in gen if limit > 0 else ():
                if not tokens:
                    first = time.perf_counter_ns()
                if self.is_eog(token):
                    reason = "stop"
                    break
                tokens.append(token)
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
        except RuntimeError:  # llama_decode interrupted by a cancel
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
        yield Generated(reason, tokens, len(window), first - start, len(tokens), max(end - first, 1))

    def close(self) -> None:
        if self._mtmd:
            mtmd_cpp.mtmd_free(self._mtmd)
            self._mtmd = None
        super().close()


def load_vision(spec: LoadSpec) -> VisionModel:
    """The loader for a model with a projector (blocking: call it in a thread)."""
    return VisionModel(spec)
