"""``shift`` and ``num_keep`` on generate and chat (Ollama v0.12.6): when the context fills, the
default drops half its history after ``num_keep`` tokens and generation goes on; ``shift: false``
ends with ``done_reason: "length"``. Both engine paths: one sequence per context, and the
batched multi-sequence context (KV cells removed and moved in place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.base import Sampling, generation_limit, shift_counts, shift_window

MODEL = "smollm2:135m"
CTX = 128
PROMPT = "Count from 1 to 1000, one number per line, and never stop:"


def body(route: str, **extra: Any) -> dict[str, Any]:
    options = {"num_ctx": CTX, "num_predict": 2 * CTX, "temperature": 0.7, "seed": 5, "repeat_penalty": 1.0}
    if route == "/api/generate":
        return {"model": MODEL, "prompt": PROMPT, "stream": False, "options": options, **extra}
    return {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": False,
            "options": options, **extra}


@pytest.fixture(scope="module", params=[1, 2], ids=["single", "batched"])
def server(request: pytest.FixtureRequest, demo_models: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = clone_models(demo_models, tmp_path_factory.mktemp(f"shift{request.param}"))
    with run_server(folder, num_parallel=request.param) as running:
        yield running


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat"])
def test_shift_goes_past_the_context(server: RunningServer, route: str) -> None:
    r = httpx.post(f"{server.url}{route}", json=body(route), timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["prompt_eval_count"] + out["eval_count"] > CTX  # more than the context could hold
    assert out["eval_count"] <= 2 * CTX
    assert out["done_reason"] in ("length", "stop")


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat"])
def test_shift_false_ends_with_length_when_the_context_is_full(server: RunningServer, route: str) -> None:
    r = httpx.post(f"{server.url}{route}", json=body(route, shift=False), timeout=300)
    out = r.json()
    assert out["done_reason"] == "length"
    assert out["prompt_eval_count"] + out["eval_count"] == CTX


def test_truncate_false_with_a_prompt_longer_than_the_context_is_a_400(server: RunningServer) -> None:
    long = {"model": MODEL, "prompt": "word " * (2 * CTX), "stream": False, "truncate": False,
            "options": {"num_ctx": CTX}}
    r = httpx.post(f"{server.url}/api/generate", json=long, timeout=60)
    assert r.status_code == 400 and "context" in r.json()["error"]


def test_shift_window_keeps_num_keep_and_the_newest_half() -> None:
    window = list(range(20))
    assert shift_window(window, 4) == [0, 1, 2, 3] + list(range(12, 20))
    assert shift_window(window, 0) == list(range(10, 20))
    assert shift_window([1, 2], 50) == [1, 2][:1] + [2][0:]  # num_keep past the end keeps all but one
    assert shift_counts(20, 4) == (4, 8)


def test_generation_limit() -> None:
    assert generation_limit(Sampling(num_predict=-1, shift=False), 128, 28) == 100
    assert generation_limit(Sampling(num_predict=50, shift=False), 128, 100) == 28
    assert generation_limit(Sampling(num_predict=-1, shift=True), 128, 28) == 1280  # 10 x num_ctx, as Ollama
    assert generation_limit(Sampling(num_predict=500, shift=True), 128, 28) == 500
