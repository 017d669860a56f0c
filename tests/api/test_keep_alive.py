"""keep_alive, expiry, /api/ps and LRU eviction through a real server with SmolLM2 copies."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import ollama

from serving import clone_models, run_server

MODEL = "smollm2:135m"
TINY = {"num_predict": 1, "num_ctx": 512, "temperature": 0}


def expires(model: ollama.ProcessResponse.Model) -> float:
    assert model.expires_at is not None
    return model.expires_at.timestamp()


def test_ps_shows_expiry_and_a_short_keep_alive_expires_on_time(demo_server) -> None:
    client = ollama.Client(host=demo_server.url)
    client.generate(model=MODEL, prompt="Hi", options=TINY, keep_alive="10m")
    [entry] = client.ps().models
    assert entry.name == MODEL and entry.digest and entry.size and entry.size > 50_000_000
    assert entry.context_length == 512 and entry.details and entry.details.family == "llama"
    assert abs(expires(entry) - (time.time() + 600)) < 5
    client.generate(model=MODEL, prompt="Hi", options=TINY, keep_alive="2s")
    assert abs(expires(client.ps().models[0]) - (time.time() + 2)) < 1.5
    time.sleep(3.0)
    assert client.ps().models == []


def test_forever_and_zero(demo_server) -> None:
    client = ollama.Client(host=demo_server.url)
    client.generate(model=MODEL, prompt="", keep_alive=-1)
    [entry] = client.ps().models
    assert entry.expires_at and entry.expires_at.year > datetime.now(tz=UTC).year + 200
    client.generate(model=MODEL, prompt="Hi", options=TINY, keep_alive=0)
    assert client.ps().models == []


def test_default_keep_alive_comes_from_settings(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "m"), keep_alive="30s") as server:
        client = ollama.Client(host=server.url)
        client.generate(model=MODEL, prompt="", options={"num_ctx": 512})
        assert abs(expires(client.ps().models[0]) - (time.time() + 30)) < 5


def test_third_model_evicts_the_least_recently_used(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "m"), max_loaded_models=2) as server:
        client = ollama.Client(host=server.url)
        client.copy(MODEL, "same-digest")
        client.create(model="ctx-a", from_=MODEL, parameters={"num_ctx": 256})
        client.create(model="ctx-b", from_=MODEL, parameters={"num_ctx": 384})
        client.generate(model=MODEL, prompt="", options={"num_ctx": 512})
        client.generate(model="same-digest", prompt="", options={"num_ctx": 512})  # same runner
        assert len(client.ps().models) == 1
        client.generate(model="ctx-a", prompt="")
        assert {m.context_length for m in client.ps().models} == {512, 256}
        client.generate(model=MODEL, prompt="", options={"num_ctx": 512})  # ctx-a is now the LRU
        client.generate(model="ctx-b", prompt="")
        assert sorted(m.context_length for m in client.ps().models) == [384, 512]
        assert server.runtime.scheduler is not None and server.runtime.scheduler._waiting == 0
