"""Engine-neutral types: how to load a model, how to sample, what a generation returns, and the
protocol every engine's model implements (llama.cpp in ``llama.py``, the fake in ``fake.py``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class LoadSpec:
    """How to load a model: the GGUF path plus llama.cpp context parameters."""

    path: str
    n_ctx: int
    n_batch: int = 512
    n_gpu_layers: int = 0
    main_gpu: int = 0
    use_mmap: bool = True
    use_mlock: bool = False
    n_threads: int = 0
    flash_attn: bool = False
    kv_cache_type: str = "f16"
    embedding: bool = False  # an embedding model (BERT...): loaded with pooling and embeddings on
    name: str = field(default="", compare=False)  # the model's name, for messages; not part of the key
    # GGUF LoRA adapters applied at scale 1.0 (as Ollama's runner applies them): a model with an
    # adapter is another load spec, so it never shares a runner with its base model.
    adapters: tuple[str, ...] = ()
    projector: str = ""  # a vision projector GGUF (CLIP/mmproj): images go through mtmd (engine/vision.py)
    prompt_cache: bool = True  # reuse KV cells of a shared prompt prefix (SKYLLAMA_PROMPT_CACHE)

    def __post_init__(self) -> None:
        # The wire (JSON) turns the tuple into a list; a frozen spec is a dict key, so it stays a tuple.
        object.__setattr__(self, "adapters", tuple(self.adapters))


@dataclass
class Sampling:
    """Per-request sampling parameters, from Ollama's option names."""

    seed: int = -1
    num_predict: int = -1
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    temperature: float = 0.8
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    stop: list[str] = field(default_factory=list)
    num_keep: int = 4  # tokens a context shift keeps at the start (Ollama's num_keep)
    shift: bool = True  # a full context discards half its history instead of ending ("length")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Sampling:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in options.items() if k in names})


@dataclass
class Generated:
    """The end of a generation: why it stopped, the tokens it produced, and timings (ns)."""

    done_reason: str
    tokens: list[int]
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


@dataclass
class TokenLogprob:
    """The log-probability of one generated token and its ``top`` alternatives (Ollama's ``Logprob``)."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token, "logprob": self.logprob, "bytes": self.bytes}
        out["top_logprobs"] = [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in self.top]
        return out


class EngineModel(Protocol):
    """A loaded model. Not thread-safe: one request at a time (the scheduler guarantees it)."""

    n_ctx: int

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None,
                 logprobs: int | None = None) -> Iterator[str | TokenLogprob | Generated]: ...

    def embed(self, texts: list[str], *, normalize: bool, truncate: bool = True) -> tuple[list[list[float]], int]: ...

    def embed_counted(self, texts: list[str], *, normalize: bool,
                      truncate: bool = True) -> tuple[list[list[float]], list[int]]: ...

    def memory_bytes(self) -> int: ...

    def close(self) -> None: ...


class Engine(Protocol):
    """Loads models: into runner processes (``engine.runner.pool.RunnerPool``) or, in tests, a fake.

    ``batching`` says whether :meth:`load_batched` works: one model whose ``n_seq`` sequences
    decode together, safe to call from several threads (``engine/multiseq.py``).
    """

    batching: bool

    def load(self, spec: LoadSpec) -> EngineModel: ...

    def load_batched(self, spec: LoadSpec, n_seq: int) -> EngineModel: ...


def image_placeholder(index: int) -> int:
    """The prompt token that stands for image ``index`` (never a real token id: negative); the
    server puts it where the prompt's ``[img-N]`` marker was, the engine evaluates the image there."""
    return -(index + 1)


class StopMatcher:
    """Holds back text that could be the start of a stop string, so stops are never emitted."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit, whether a stop string was found)."""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self.pending[: min(hits)]
            self.pending = ""
            return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def l2_normalized(vector: list[float]) -> list[float]:
    """``vector`` scaled to unit length (unchanged when it is all zeros)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


SHIFT_PREDICT_FACTOR = 10  # num_predict -1 with context shift: at most 10 x num_ctx tokens, as Ollama


def generation_limit(sampling: Sampling, n_ctx: int, prompt_len: int) -> int:
    """The most tokens a generation may produce: ``num_predict``, bounded by the room left in
    the context unless context shift lets it go on (then -1 means 10 x ``n_ctx``)."""
    if sampling.shift:
        return sampling.num_predict if sampling.num_predict >= 0 else SHIFT_PREDICT_FACTOR * n_ctx
    room = n_ctx - prompt_len
    return min(room, sampling.num_predict) if sampling.num_predict >= 0 else room


def shift_window(window: list[int], num_keep: int) -> list[int]:
    """Ollama's context shift: keep the first ``num_keep`` tokens, drop half of the rest (the
    oldest), keep the newest."""
    keep = max(0, min(num_keep, len(window) - 1))
    discard = (len(window) - keep) // 2
    return window[:keep] + window[keep + discard:]


def shift_counts(n_past: int, num_keep: int) -> tuple[int, int]:
    """``(keep, discard)`` for a KV cache holding ``n_past`` tokens (as :func:`shift_window`)."""
    keep = max(0, min(num_keep, n_past - 1))
    return keep, (n_past - keep) // 2
