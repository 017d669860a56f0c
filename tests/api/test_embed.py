"""``/api/embed`` and the legacy ``/api/embeddings`` through a real server with SmolLM2 (mean pooled)."""

from __future__ import annotations

import math

import httpx
import ollama
import pytest

from serving import RunningServer

MODEL = "smollm2:135m"
SMALL = {"num_ctx": 256}


@pytest.fixture
def client(demo_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=demo_server.url)


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_embed_a_batch_is_normalised_and_matches_single_inputs(client: ollama.Client) -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten sleeps."]
    r = client.embed(model=MODEL, input=texts, options=SMALL)
    assert len(r.embeddings) == 3 and {len(v) for v in r.embeddings} == {576}
    assert all(abs(norm(v) - 1) < 1e-4 for v in r.embeddings)
    assert r.prompt_eval_count >= 15 and r.total_duration and r.load_duration is not None
    single = client.embed(model=MODEL, input=texts[1], options=SMALL).embeddings[0]
    assert max(abs(a - b) for a, b in zip(single, r.embeddings[1], strict=True)) < 1e-4


def test_dimensions_cut_and_renormalise(client: ollama.Client) -> None:
    r = httpx.post(f"{client._client.base_url}/api/embed",
                   json={"model": MODEL, "input": "hello", "dimensions": 32, "options": SMALL}).json()
    assert len(r["embeddings"][0]) == 32 and abs(norm(r["embeddings"][0]) - 1) < 1e-4


def test_legacy_embeddings_are_raw(client: ollama.Client) -> None:
    raw = client.embeddings(model=MODEL, prompt="The cat sat on the mat.", options=SMALL).embedding
    unit = client.embed(model=MODEL, input="The cat sat on the mat.", options=SMALL).embeddings[0]
    assert abs(norm(raw) - 1) > 1e-2
    assert max(abs(x / norm(raw) - y) for x, y in zip(raw, unit, strict=True)) < 1e-4
    assert client.embeddings(model=MODEL, prompt="").embedding == []


def test_empty_input_loads_the_model(client: ollama.Client) -> None:
    r = httpx.post(f"{client._client.base_url}/api/embed", json={"model": MODEL, "input": []}).json()
    assert r == {"model": MODEL, "embeddings": []}
    assert [m.model for m in client.ps().models] == [MODEL]


def test_truncate(demo_server: RunningServer) -> None:
    long = " ".join(["word"] * 300)
    body = {"model": MODEL, "input": long, "options": {"num_ctx": 64}}
    r = httpx.post(f"{demo_server.url}/api/embed", json={**body, "truncate": False}, timeout=60)
    assert r.status_code == 400 and r.json() == {"error": "the input length exceeds the context length"}
    r = httpx.post(f"{demo_server.url}/api/embed", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 64


@pytest.mark.parametrize(("body", "status"), [
    ({"model": "ghost", "input": "x"}, 404),
    ({"model": MODEL, "input": "x", "options": {"num_ctx": "big"}}, 400),
    ({"model": MODEL, "input": 42}, 400),
])
def test_bad_embed_requests(demo_server: RunningServer, body: dict, status: int) -> None:
    r = httpx.post(f"{demo_server.url}/api/embed", json=body, timeout=60)
    assert r.status_code == status and "error" in r.json()
