"""The inference function in-process: chat, generate, embed and embeddings with the real demo
models, fetched from (moto's) S3 into the function's temporary folder on first use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lambda_support import HTTP_KINDS, FakeAws, LambdaContext, invoke_http, load_function

pytestmark = pytest.mark.model

OPTIONS = {"temperature": 0, "seed": 1, "num_predict": 4}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inference-tmp") / "blobs"


@pytest.fixture(scope="module")
def inference(seeded_aws: FakeAws, cache: Path) -> Any:
    env = {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(cache)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_function("inference", env)


def test_chat_loads_the_model_from_s3_into_tmp(inference: Any, cache: Path) -> None:
    assert not any(cache.glob("sha256-*"))  # nothing cached before the first request
    chat = invoke_http(inference, "rest-api-v1", "POST", "/api/chat", body={
        "model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}],
        "stream": False, "options": OPTIONS})
    assert chat.status == 200, chat.body
    body = chat.json()
    assert body["done"] is True and body["message"]["role"] == "assistant" and body["eval_count"] > 0
    cached = [p.name for p in cache.glob("sha256-*")]
    assert cached and not list(cache.glob(".partial-*"))  # verified, renamed into the cache


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_streamed_chat_is_ndjson_text_for_every_source(inference: Any, kind: str) -> None:
    chat = invoke_http(inference, kind, "POST", "/api/chat", body={
        "model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}], "options": OPTIONS})
    assert chat.status == 200 and not chat.base64
    assert chat.headers["content-type"].startswith("application/x-ndjson")
    lines = chat.ndjson()
    assert lines[-1]["done"] is True and all("message" in line for line in lines)


def test_generate(inference: Any) -> None:
    gen = invoke_http(inference, "http-api-v2", "POST", "/api/generate", body={
        "model": "smollm2:135m", "prompt": "Once upon", "stream": False, "options": OPTIONS})
    assert gen.status == 200, gen.body
    assert gen.json()["done"] is True and gen.json()["response"]


def test_embed_and_embeddings(inference: Any) -> None:
    tags = [m["name"] for m in invoke_http(inference, "alb", "GET", "/api/tags").json()["models"]]
    model = next((n for n in tags if n.startswith("all-minilm")), "smollm2:135m")
    embed = invoke_http(inference, "function-url", "POST", "/api/embed", body={"model": model, "input": ["a", "b"]})
    assert embed.status == 200, embed.body
    vectors = embed.json()["embeddings"]
    assert len(vectors) == 2 and len(vectors[0]) > 0
    legacy = invoke_http(inference, "rest-api-v1", "POST", "/api/embeddings", body={"model": model, "prompt": "a"})
    assert legacy.status == 200 and len(legacy.json()["embedding"]) == len(vectors[0])


def test_unknown_model_is_404(inference: Any) -> None:
    missing = invoke_http(inference, "rest-api-v1", "POST", "/api/chat",
                          body={"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status == 404 and "not found" in missing.json()["error"]


def test_warmer_event_loads_the_model(inference: Any) -> None:
    """A warm-up naming a model (a bare name: the default keep_alive) holds it in this instance."""
    result = inference.handler({"source": "skyllama.warmer", "models": ["smollm2:135m"]}, LambdaContext())
    assert result == {"warm": True, "models": {"smollm2:135m": "warm"}}
    ps = invoke_http(inference, "rest-api-v1", "GET", "/api/ps").json()["models"]
    assert "smollm2:135m" in [row["name"] for row in ps]


def test_generation_emits_emf_timing_metrics(inference: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """With the aws backend (EMF on by default), a generation prints one EMF document whose
    TTFT and per-token figures are the response's own durations."""
    capsys.readouterr()
    gen = invoke_http(inference, "http-api-v2", "POST", "/api/generate", body={
        "model": "smollm2:135m", "prompt": "Once upon", "stream": False, "options": OPTIONS})
    assert gen.status == 200, gen.body
    body = gen.json()
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"TimeToFirstToken"' in line]
    assert len(docs) == 1, docs
    doc = docs[0]
    names = {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"TimeToFirstToken", "LoadDuration", "TimePerOutputToken"} <= names
    assert doc["model"] == "smollm2:135m" and doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "skyllama"
    ttft_ms = (body["load_duration"] + body["prompt_eval_duration"]) / 1e6
    assert doc["TimeToFirstToken"] == [pytest.approx(ttft_ms, rel=1e-6)]  # EMF values are lists
    per_token_ms = body["eval_duration"] / body["eval_count"] / 1e6
    assert doc["TimePerOutputToken"] == [pytest.approx(per_token_ms, rel=1e-6)]
