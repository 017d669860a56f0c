"""A fake engine for fast API and scheduler tests: no weights, scripted replies, recorded history.

``FakeEngine.enqueue([...])`` queues replies (each a list of text pieces); ``FakeEngine.load`` is
a loader with the same signature as ``engine.llama.load_llama``. Tokens are characters.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import BadRequest
from .base import Generated, LoadSpec, Sampling, StopMatcher, TokenLogprob


@dataclass
class FakeEngine:
    """Loads :class:`FakeModel` objects that reply from a shared script."""

    replies: deque[list[str]] = field(default_factory=deque)
    loads: list[LoadSpec] = field(default_factory=list)
    closed: list[LoadSpec] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    embed_calls: list[list[str]] = field(default_factory=list)
    token_delay: float = 0.0
    load_delay: float = 0.0
    batching: bool = False  # one context per parallel slot, as an engine without multiseq

    def enqueue(self, pieces: list[str]) -> None:
        self.replies.append(list(pieces))

    def load(self, spec: LoadSpec) -> FakeModel:
        time.sleep(self.load_delay)
        self.loads.append(spec)
        return FakeModel(spec, self)

    def load_batched(self, spec: LoadSpec, n_seq: int) -> FakeModel:
        raise NotImplementedError("the fake engine has no batched models")


PIECE_IDS = 0x110000  # past every code point: the ids of generated pieces


class FakeModel:
    """A model whose prompt tokens are characters, and whose every scripted reply piece is one
    generated token (as a real engine streams a token at a time), so ``num_predict`` counts pieces."""

    def __init__(self, spec: LoadSpec, engine: FakeEngine) -> None:
        self.spec = spec
        self.engine = engine
        self.n_ctx = spec.n_ctx
        self._pieces: dict[int, str] = {}

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, tokens: list[int]) -> str:
        return "".join(self._pieces.get(t, "") if t >= PIECE_IDS else chr(t) for t in tokens)

    def _piece_id(self, piece: str) -> int:
        token = PIECE_IDS + len(self._pieces)
        self._pieces[token] = piece
        return token

    def generate(self, prompt: list[int], sampling: Sampling, *, grammar: str | None = None,
                 cancel: threading.Event | None = None,
                 logprobs: int | None = None) -> Iterator[str | TokenLogprob | Generated]:
        self.engine.prompts.append(self.detokenize(prompt))
        pieces = self.engine.replies.popleft() if self.engine.replies else ["ok"]
        stops = StopMatcher(sampling.stop)
        tokens: list[int] = []
        reason = "stop"
        for piece in pieces:
            if cancel is not None and cancel.is_set():
                break
            time.sleep(self.engine.token_delay)
            if 0 <= sampling.num_predict <= len(tokens):
                reason = "length"
                break
            tokens.append(self._piece_id(piece))
            if logprobs is not None:  # one "token" per piece, certain, its alternatives less so
                top = [(piece, 0.0, list(piece.encode()))] + [(f"alt{i}", -1.0 - i, []) for i in range(logprobs - 1)]
                yield TokenLogprob(piece, 0.0, list(piece.encode()), top[:logprobs])
            text, stopped = stops.feed(piece)
            if text:
                yield text
            if stopped:
                break
        else:
            if tail := stops.flush():
                yield tail
        yield Generated(reason, tokens, len(prompt), 1000, len(tokens), 1000 * max(len(tokens), 1))

    def embed(self, texts: list[str], *, normalize: bool, truncate: bool = True) -> tuple[list[list[float]], int]:
        vectors, counts = self.embed_counted(texts, normalize=normalize, truncate=truncate)
        return vectors, sum(counts)

    def embed_counted(self, texts: list[str], *, normalize: bool,
                      truncate: bool = True) -> tuple[list[list[float]], list[int]]:
        self.engine.embed_calls.append(list(texts))
        vectors = []
        for text in texts:
            if len(text) > self.n_ctx and not truncate:
                raise BadRequest("the input length exceeds the context length")
            vec = [float(len(text)), 1.0]
            norm = sum(x * x for x in vec) ** 0.5
            vectors.append([x / norm for x in vec] if normalize else vec)
        return vectors, [min(len(t), self.n_ctx) for t in texts]

    def memory_bytes(self) -> int:
        return 1 << 20

    def close(self) -> None:
        self.engine.closed.append(self.spec)
