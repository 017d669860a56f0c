"""The stated range of every numeric option, checked before a value can reach native code (T-31).

Ollama checks only an option's type. llama.cpp takes whatever it is handed, and ctypes wraps an
out-of-range integer without a word (``2**32 + 1`` threads becomes 1 thread), so a bad value
becomes a segfault (``num_thread`` 1000000 in libgomp), an ``std::out_of_range`` abort (a token
id outside the vocabulary) or a huge allocation. Every numeric option that reaches the engine has
a range here. The same table checks a request's ``options``, the parameters a model has stored
(merged under those options when a model runs) and the parameters ``/api/create`` would store.

Some upper bounds depend on the host (its CPU count) or on the operator's caps
(``SKYLLAMA_MAX_NUM_CTX``, ``SKYLLAMA_MAX_NUM_PREDICT``, ``OLLAMA_NUM_PARALLEL``). Those come
from :class:`OptionLimits`, which the caller builds from its settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOption

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MASK = 2**32 - 1
# A generate ``context`` may be longer than the model's context: it is the running history a client
# hands back, and the prompt built from it is cut to fit num_ctx. This factor bounds the detokenize
# work one request can ask for.
CONTEXT_TOKENS_FACTOR = 4
# Slots a request or a stored PARAMETER may ask for (each one can be a whole llama.cpp context).
# The operator's OLLAMA_NUM_PARALLEL may set more.
MAX_NUM_PARALLEL = 64
# Layers llama.cpp offloads. A number above the model's layer count means "all". Ollama users write
# 999 for that, so the cap is well above it and still far from int32 overflow.
MAX_NUM_GPU = 1 << 16
MAX_MAIN_GPU = 64
MAX_TOP_K = 1_000_000  # above the vocabulary llama.cpp keeps every token; vocabularies stay below 1e6


@dataclass(frozen=True)
class Bound:
    """An inclusive range, and why it is there (shown in docs and tests, not to clients)."""

    low: float
    high: float
    why: str

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class OptionLimits:
    """The host facts and operator caps that some bounds depend on."""

    max_num_ctx: int = 131072
    max_num_predict: int = 65536
    num_parallel: int = 1
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @classmethod
    def from_settings(cls, settings: Any) -> OptionLimits:
        """The limits that ``settings`` (a :class:`skyllama.settings.Settings`) imply on this host."""
        return cls(max_num_ctx=settings.max_num_ctx, max_num_predict=settings.max_num_predict,
                   num_parallel=settings.num_parallel)

    @property
    def max_context_tokens(self) -> int:
        return self.max_num_ctx * CONTEXT_TOKENS_FACTOR


def option_bounds(limits: OptionLimits) -> dict[str, Bound]:
    """option name -> its :class:`Bound`, for every numeric option that reaches the engine.

    Not in the table: booleans, ``stop`` (bounded in :mod:`skyllama.options`), and ``tfs_z``
    (accepted for compatibility and never passed to the engine).
    """
    ctx = limits.max_num_ctx
    return {
        # load-time options
        "num_ctx": Bound(0, ctx, "0: the default; llama.cpp allocates the KV cache for all of it "
                                 "(SKYLLAMA_MAX_NUM_CTX)"),
        "num_batch": Bound(0, ctx, "0: the default (512); tokens per llama.cpp batch, cut to num_ctx"),
        "num_thread": Bound(0, max(1, limits.cpus) * 2, "0: the default; libgomp segfaults on huge "
                                                       "counts, and threads beyond 2 per core only contend"),
        "num_gpu": Bound(-1, MAX_NUM_GPU, "-1: all layers; a number above the model's layers also means all"),
        "main_gpu": Bound(0, MAX_MAIN_GPU, "a device index"),
        "num_parallel": Bound(0, max(MAX_NUM_PARALLEL, limits.num_parallel),
                              "0: OLLAMA_NUM_PARALLEL; each slot may be its own llama.cpp context"),
        # sampling options
        "num_predict": Bound(-1, limits.max_num_predict, "-1: until the context is full "
                                                         "(SKYLLAMA_MAX_NUM_PREDICT)"),
        "num_keep": Bound(-1, ctx, "tokens kept at the start when the context shifts"),
        "repeat_last_n": Bound(-1, ctx, "-1: the whole context; the penalty window"),
        "seed": Bound(INT64_MIN, INT64_MAX, "Ollama's int; llama.cpp takes a uint32 (see native_seed)"),
        "top_k": Bound(0, MAX_TOP_K, "0: off; llama.cpp's k is an int32"),
        "top_p": Bound(0.0, 1.0, "a probability mass"),
        "min_p": Bound(0.0, 1.0, "a probability"),
        "typical_p": Bound(0.0, 1.0, "a probability mass"),
        "temperature": Bound(0.0, 100.0, "0: greedy; past a few the distribution is already flat"),
        "repeat_penalty": Bound(0.0, 100.0, "a divisor of repeated tokens' logits"),
        "presence_penalty": Bound(-100.0, 100.0, "added to repeated tokens' logits"),
        "frequency_penalty": Bound(-100.0, 100.0, "added per repetition to tokens' logits"),
        "mirostat": Bound(0, 2, "0: off, 1: Mirostat, 2: Mirostat 2.0"),
        "mirostat_tau": Bound(0.0, 100.0, "target surprise in bits (log2 of a vocabulary is under 20)"),
        "mirostat_eta": Bound(0.0, 10.0, "learning rate"),
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_bounds(options: dict[str, Any], limits: OptionLimits, *, source: str = "option",
                 hint: str = "") -> None:
    """Raise :class:`InvalidOption` (400) for the first numeric value outside its bound.

    ``source`` names where the values came from in the message (``option``, ``parameter``,
    ``model parameter``). Values of the wrong type are :mod:`skyllama.options`'s business.
    """
    bounds = option_bounds(limits)
    for key, value in options.items():
        bound = bounds.get(key)
        if bound is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not bound.holds(value):
            raise InvalidOption(f"{source} {key} must be between {_number(bound.low)} and "
                                f"{_number(bound.high)}{hint}")


def native_seed(seed: int) -> int:
    """The seed llama.cpp gets. Negative means random (-1, as Ollama). Other values are cut to
    uint32, as Ollama's ``uint32(seed)`` cast cuts them, so nothing overflows a ctypes argument."""
    return -1 if seed < 0 else seed & UINT32_MASK


def check_context_tokens(context: Iterable[Any] | None, vocab_size: int | None, limits: OptionLimits) -> None:
    """A generate ``context``: integers within the model's vocabulary, and not too many of them.

    llama.cpp looks each id up with ``std::vector::at``, so an id outside ``0 .. vocab-1`` aborts the
    process. ``vocab_size`` comes from the GGUF's metadata. When it is unknown, only negative ids
    are refused.
    """
    if context is None:
        return
    tokens = list(context)
    if len(tokens) > limits.max_context_tokens:
        raise InvalidOption(f"context has {len(tokens)} tokens, more than the limit {limits.max_context_tokens}")
    high = vocab_size - 1 if vocab_size else None
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int):
            raise InvalidOption("context must be a list of token ids (integers)")
        if token < 0 or (high is not None and token > high):
            limit = f"between 0 and {high}" if high is not None else "0 or more"
            raise InvalidOption(f"context token {token} is outside the model's vocabulary (ids are {limit})")
