"""JSON answers carry gin's ``Content-Type: application/json; charset=utf-8`` on Ollama's routes
(issue 20 item 8); the OpenAI front keeps the bare ``application/json`` Ollama's middleware sets."""

from __future__ import annotations

import httpx
import pytest

from serving import RunningServer

GIN_JSON = "application/json; charset=utf-8"


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/api/tags", None, 200),
    ("GET", "/api/version", None, 200),
    ("GET", "/api/ps", None, 200),
    ("POST", "/api/show", {"model": "smollm2:135m"}, 200),
    ("POST", "/api/show", {"model": "missing"}, 404),
    ("POST", "/api/chat", {"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}],
                           "stream": False}, 200),
    ("POST", "/api/generate", {"model": "smollm2:135m", "prompt": "hi", "options": {"top_k": "x"}}, 400),
    ("POST", "/api/embed", {"model": "all-minilm", "input": "hi"}, 200),
])
def test_ollama_json_answers_name_their_charset(demo_fake_server: RunningServer, method: str, path: str,
                                                 body: object, status: int) -> None:
    r = httpx.request(method, demo_fake_server.url + path, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == GIN_JSON
    r.json()


def test_streams_and_the_openai_front_keep_their_types(demo_fake_server: RunningServer) -> None:
    url = demo_fake_server.url
    r = httpx.post(url + "/api/chat", json={"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert httpx.get(url + "/v1/models").headers["content-type"] == "application/json"
    assert httpx.get(url + "/").headers["content-type"] == "text/plain; charset=utf-8"
