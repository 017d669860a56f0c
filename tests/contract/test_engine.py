"""One contract for every engine model: the fake (``engine/fake.py``), llama.cpp in this process
(``engine/llama.py``) and llama.cpp in a runner process (``engine/runner``). A test that runs on
the fake engine therefore means what it says about the real one (issue 18)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from skyllama.demo import smollm2_gguf
from skyllama.engine.base import EngineModel, Generated, LoadSpec, Sampling, TokenLogprob
from skyllama.engine.fake import FakeEngine
from skyllama.errors import BadRequest

WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."] * 8


@dataclass
class Subject:
    model: EngineModel
    script: Callable[[], None]  # what the engine will say next (the fake's script; real ones need none)


def _fake() -> Iterator[Subject]:
    engine = FakeEngine()
    yield Subject(engine.load(LoadSpec(path="fake", n_ctx=512)), lambda: engine.enqueue(WORDS))


def _llama() -> Iterator[Subject]:
    from skyllama.engine.llama import LlamaModel

    model = LlamaModel(LoadSpec(path=str(smollm2_gguf()), n_ctx=512, n_threads=2))
    yield Subject(model, lambda: None)
    model.close()


def _runner() -> Iterator[Subject]:
    from skyllama.engine.runner.pool import RunnerPool

    pool = RunnerPool(spares=0)
    model = pool.load(LoadSpec(path=str(smollm2_gguf()), n_ctx=512, n_threads=2))
    yield Subject(model, lambda: None)
    model.close()
    pool.close()


@pytest.fixture(params=["fake", "llama", "runner"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from {"fake": _fake, "llama": _llama, "runner": _runner}[request.param]()


CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"  # SmolLM2 answers a chat turn


def generate(subject: Subject, text: str, **kwargs: object) -> tuple[list[object], Generated]:
    subject.script()
    text = CHATML.format(text)
    sampling = kwargs.pop("sampling", Sampling(temperature=0, num_predict=16))
    items = list(subject.model.generate(subject.model.tokenize(text), sampling, **kwargs))  # type: ignore[arg-type]
    assert isinstance(items[-1], Generated) and not any(isinstance(i, Generated) for i in items[:-1])
    return items[:-1], items[-1]


def test_tokens_round_trip(subject: Subject) -> None:
    tokens = subject.model.tokenize("Hello world", add_special=False)
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert subject.model.detokenize(tokens) == "Hello world"
    assert isinstance(subject.model.n_ctx, int) and subject.model.n_ctx > 0


def test_generate_yields_text_then_one_result(subject: Subject) -> None:
    items, done = generate(subject, "Why is the sky blue?")
    assert all(isinstance(i, str) for i in items)
    assert done.done_reason in ("stop", "length")
    assert done.eval_count == len(done.tokens) <= 16
    assert done.prompt_eval_count >= 1 and done.eval_duration > 0


def test_num_predict_ends_with_length(subject: Subject) -> None:
    _items, done = generate(subject, "Count from one to fifty:", sampling=Sampling(temperature=0, num_predict=3))
    assert done.eval_count <= 3
    if done.eval_count == 3:
        assert done.done_reason == "length"


def test_a_stop_string_is_never_emitted(subject: Subject) -> None:
    items, _ = generate(subject, "Why is the sky blue?", sampling=Sampling(temperature=0, num_predict=24))
    text = "".join(str(i) for i in items)
    assert text, "the engine produced nothing to stop on"
    stop = text[len(text) // 2: len(text) // 2 + 3]
    items, done = generate(subject, "Why is the sky blue?",
                           sampling=Sampling(temperature=0, num_predict=24, stop=[stop]))
    assert stop not in "".join(str(i) for i in items)
    assert done.done_reason == "stop"


def test_a_set_cancel_flag_ends_the_generation(subject: Subject) -> None:
    cancel = threading.Event()
    cancel.set()
    _items, done = generate(subject, "Write a long story.", sampling=Sampling(temperature=0, num_predict=200),
                            cancel=cancel)
    assert done.eval_count <= 1


def test_logprobs_precede_each_token(subject: Subject) -> None:
    items, done = generate(subject, "Hi", sampling=Sampling(temperature=0, num_predict=4), logprobs=2)
    lps = [i for i in items if isinstance(i, TokenLogprob)]
    assert lps and all(len(lp.top) == 2 and lp.logprob <= 0.0 for lp in lps)
    assert isinstance(items[0], TokenLogprob)


def test_embeddings_one_per_text(subject: Subject) -> None:
    vectors, counts = subject.model.embed_counted(["a cat", "a much longer text about dogs"], normalize=True)
    assert len(vectors) == len(counts) == 2 and all(c >= 1 for c in counts)
    assert len(vectors[0]) == len(vectors[1])
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in vectors)
    total = subject.model.embed(["a cat"], normalize=False)[1]
    assert total == counts[0]


def test_an_input_over_the_context_without_truncation_is_a_400(subject: Subject) -> None:
    with pytest.raises(BadRequest):
        subject.model.embed_counted(["word " * 2000], normalize=True, truncate=False)
    vectors, _ = subject.model.embed_counted(["word " * 2000], normalize=True, truncate=True)
    assert len(vectors) == 1


def test_memory_is_reported(subject: Subject) -> None:
    assert subject.model.memory_bytes() > 0
