"""Per-key metering with the real SmolLM2-135M, through the official ``ollama`` client with a key.

Usage records must match the token counts the client received (generate, chat, embed, streamed
or not, and the OpenAI-compatible /v1 routes when the app has them); quotas answer 429 with
Retry-After; ``GET /api/usage`` summarises by day and model.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.http.auth import flat_routes
from skyllama.http.metering import counts, request_model

MODEL = "smollm2:135m"
SMALL = {"temperature": 0, "seed": 3, "num_predict": 6, "num_ctx": 256}


@pytest.fixture(scope="module")
def server(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = clone_models(demo_models, tmp_path_factory.mktemp("usage") / "models")
    with run_server(folder, auth="on") as running:
        yield running


def make_key(server: RunningServer, *scopes: str, owner: str = "alice", **quotas: int) -> tuple[str, str]:
    secret, record = server.runtime.keys.create_key(name="test", owner=owner,
                                                    scopes=list(scopes or ("inference",)), **quotas)
    return secret, record["id"]


def client_for(server: RunningServer, secret: str) -> ollama.Client:
    return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {secret}"})


def wait_records(server: RunningServer, key_id: str, count: int) -> list[dict[str, Any]]:
    """Records are written once the last byte is sent, so the client may be a moment ahead."""
    deadline = time.time() + 10
    while True:
        records = server.runtime.meter.records(key_id)
        if len(records) >= count or time.time() > deadline:
            return records
        time.sleep(0.05)


def test_no_key_is_refused_by_the_official_client(server: RunningServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=server.url).generate(model=MODEL, prompt="hi", options=SMALL)
    assert info.value.status_code == 401 and info.value.error == "unauthorized"


def test_records_match_the_counts_returned(server: RunningServer) -> None:
    secret, key_id = make_key(server)
    client = client_for(server, secret)
    expected: list[tuple[str, int, int, int]] = []

    r = client.generate(model=MODEL, prompt="Why is the sky blue?", options=SMALL)
    expected.append(("/api/generate", r.prompt_eval_count or 0, r.eval_count or 0, 0))
    last = list(client.generate(model=MODEL, prompt="Name a fruit.", options=SMALL, stream=True))[-1]
    expected.append(("/api/generate", last.prompt_eval_count or 0, last.eval_count or 0, 0))
    c = client.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], options=SMALL)
    expected.append(("/api/chat", c.prompt_eval_count or 0, c.eval_count or 0, 0))
    last_chat = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "Count to 3."}],
                                 options=SMALL, stream=True))[-1]
    expected.append(("/api/chat", last_chat.prompt_eval_count or 0, last_chat.eval_count or 0, 0))
    e = client.embed(model=MODEL, input=["The cat sat.", "A dog barked loudly.", "Hi"], options=SMALL)
    expected.append(("/api/embed", e.prompt_eval_count or 0, 0, 3))
    client.embeddings(model=MODEL, prompt="legacy", options=SMALL)
    expected.append(("/api/embeddings", 0, 0, 1))
    expected += v1_requests(server, secret)
    assert all(p > 0 for route, p, _c, _i in expected if route != "/api/embeddings")

    records = wait_records(server, key_id, len(expected))
    got = Counter((r["route"], r["prompt_tokens"], r["completion_tokens"], r["embedding_inputs"]) for r in records)
    assert got == Counter(expected)
    assert {r["model"] for r in records} == {MODEL}
    assert all(r["owner"] == "alice" and r["key_id"] == key_id and r["status"] == 200 for r in records)
    assert all(r["duration_ns"] > 0 and r["method"] == "POST" for r in records)

    summary = httpx.get(f"{server.url}/api/usage", headers={"Authorization": f"Bearer {secret}"}).json()
    assert summary["key"] == key_id and summary["owner"] == "alice" and len(summary["days"]) == 1
    (model_row,) = summary["days"][0]["models"]
    assert model_row["model"] == MODEL and model_row["requests"] == len(expected)
    assert model_row["prompt_tokens"] == sum(p for _r, p, _c, _i in expected)
    assert model_row["completion_tokens"] == sum(c for _r, _p, c, _i in expected)
    assert model_row["embedding_inputs"] == sum(i for _r, _p, _c, i in expected)
    assert model_row["duration_ns"] == sum(r["duration_ns"] for r in records)


def v1_requests(server: RunningServer, secret: str) -> list[tuple[str, int, int, int]]:
    """The OpenAI-compatible routes, when the app has them: the ``usage`` objects returned."""
    paths = {getattr(r, "path", "") for r in flat_routes(server.server.config.app)}  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {secret}"}
    expected = []
    if "/v1/chat/completions" in paths:
        u = httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=60, json={
            "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5,
            "temperature": 0}).json()["usage"]
        expected.append(("/v1/chat/completions", u["prompt_tokens"], u["completion_tokens"], 0))
        streamed = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": True,
                    "temperature": 0, "seed": 1}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers=headers, timeout=60,
                          json={**streamed, "stream_options": {"include_usage": True}}) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: {")]
        u = next(json.loads(e[6:])["usage"] for e in reversed(events) if json.loads(e[6:]).get("usage"))
        expected.append(("/v1/chat/completions", u["prompt_tokens"], u["completion_tokens"], 0))
        # Without include_usage the client sees no usage, but the key is still metered (same counts: greedy).
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers=headers, timeout=60,
                          json=streamed) as r:
            assert not any('"usage"' in line for line in r.iter_lines())
        expected.append(("/v1/chat/completions", u["prompt_tokens"], u["completion_tokens"], 0))
    if "/v1/completions" in paths:
        u = httpx.post(f"{server.url}/v1/completions", headers=headers, timeout=60, json={
            "model": MODEL, "prompt": "Once upon", "max_tokens": 5, "temperature": 0}).json()["usage"]
        expected.append(("/v1/completions", u["prompt_tokens"], u["completion_tokens"], 0))
    if "/v1/embeddings" in paths:
        u = httpx.post(f"{server.url}/v1/embeddings", headers=headers, timeout=60, json={
            "model": MODEL, "input": ["one", "two"]}).json()["usage"]
        expected.append(("/v1/embeddings", u["prompt_tokens"], u.get("completion_tokens", 0), 2))
    return expected


def test_requests_per_minute_quota(server: RunningServer) -> None:
    for _attempt in range(3):
        secret, _key_id = make_key(server, rpm=2)
        headers = {"Authorization": f"Bearer {secret}"}
        minute = time.time() // 60
        codes = [httpx.get(f"{server.url}/api/tags", headers=headers) for _ in range(3)]
        if time.time() // 60 == minute:
            break
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json() == {"error": "quota exceeded: 2 requests per minute"}
    assert 1 <= int(codes[2].headers["retry-after"]) <= 60
    with pytest.raises(ollama.ResponseError) as info:
        client_for(server, secret).list()
    assert info.value.status_code == 429


def test_tokens_per_day_quota(server: RunningServer) -> None:
    secret, key_id = make_key(server, tokens_per_day=5)
    client = client_for(server, secret)
    client.generate(model=MODEL, prompt="Why is the sky blue?", options=SMALL)  # starts under the limit
    wait_records(server, key_id, 1)
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model=MODEL, prompt="Again?", options=SMALL)
    assert info.value.status_code == 429 and "tokens per day" in info.value.error
    r = httpx.post(f"{server.url}/api/generate", json={"model": MODEL, "prompt": "x"},
                   headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 86400


def test_usage_of_other_keys_is_for_admins(server: RunningServer) -> None:
    alice, alice_id = make_key(server)
    bob, _bob_id = make_key(server, owner="bob")
    admin, _ = make_key(server, "admin", owner="ops")
    httpx.get(f"{server.url}/api/tags", headers={"Authorization": f"Bearer {alice}"})
    wait_records(server, alice_id, 1)
    r = httpx.get(f"{server.url}/api/usage", params={"key": alice_id}, headers={"Authorization": f"Bearer {bob}"})
    assert r.status_code == 403 and r.json() == {"error": "forbidden"}
    r = httpx.get(f"{server.url}/api/usage", params={"key": alice_id, "days": 1},
                  headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["owner"] == "alice"
    assert r.json()["days"][0]["models"][0]["requests"] == 1 and r.json()["days"][0]["models"][0]["model"] == "-"
    assert httpx.get(f"{server.url}/api/usage", params={"days": 0},
                     headers={"Authorization": f"Bearer {alice}"}).status_code == 400


def test_counts_are_read_from_what_the_client_received() -> None:
    ndjson = b'{"response":"a","done":false}\n{"done":true,"prompt_eval_count":7,"eval_count":3}\n'
    assert counts("application/x-ndjson", ndjson) == (7, 3, 0)
    sse = (b'data: {"choices":[]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}\n\n'
           b"data: [DONE]\n\n")
    assert counts("text/event-stream", sse) == (9, 4, 0)
    assert counts("application/json", b'{"embeddings":[[1],[2]],"prompt_eval_count":5}') == (5, 0, 2)
    assert counts("application/json", b'{"object":"list","data":[{"object":"embedding"}],'
                                      b'"usage":{"prompt_tokens":2,"total_tokens":2}}') == (2, 0, 1)
    tail = b'"response":"say \\"eval_count\\":999","prompt_eval_count":11,"eval_count":2}'
    assert counts("application/json", tail, truncated=True) == (11, 2, 0)
    assert counts("application/json", b"not json") == (0, 0, 0)
    assert request_model(b'{"model":"a:b","prompt":"x"}') == "a:b"
    assert request_model(b'{"model":"big","images":["' + b"A" * 100 + b"...") == "big"


def test_emf_metrics_only_when_enabled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skyllama.adapters.local.sqlite_state import SqliteStateStore
    from skyllama.services.access.metering import Meter, UsageRecord
    from skyllama.settings import Settings

    assert not Settings.from_env({}).emf_enabled and Settings.from_env({}, backend="aws").emf_enabled
    store = SqliteStateStore(tmp_path / "s.db")
    usage = UsageRecord(owner="o", key_id="k", model="m", route="/api/chat", method="POST", status=200,
                        duration_ns=5_000_000, prompt_tokens=4, completion_tokens=2)
    Meter(store).record(usage)
    assert capsys.readouterr().out == ""
    Meter(store, emf=True).record(UsageRecord(**{**usage.__dict__, "request_id": ""}))
    doc = json.loads(capsys.readouterr().out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "skyllama"
    assert doc["route"] == "/api/chat" and doc["PromptTokens"] == [4.0] and doc["key_id"] == "k"
    assert Meter(store).summary("k")[0]["models"][0]["requests"] == 2
    store.close()
