"""``GET /metrics`` after real traffic: the counters match the requests made."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving import RunningServer


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_real_requests(demo_server: RunningServer) -> None:
    url = demo_server.url
    body = {"model": "smollm2:135m", "prompt": "Hi", "stream": False, "options": {"num_predict": 3, "num_ctx": 512}}
    replies = [httpx.post(f"{url}/api/generate", json=body, timeout=60).json() for _ in range(2)]
    httpx.post(f"{url}/api/generate", json={"model": "nope", "prompt": "x"})
    httpx.post(f"{url}/api/embed", json={"model": "all-minilm", "input": ["a", "b"]}, timeout=60)
    m = scrape(url)
    key = ("route", "/api/generate"), ("status", "200")
    assert m[("skyllama_requests_total", (("model", "smollm2:135m"), *key))] == 2
    assert m[("skyllama_requests_total", (("model", "nope"), ("route", "/api/generate"), ("status", "404")))] == 1
    assert m[("skyllama_requests_total", (("model", "all-minilm"), ("route", "/api/embed"), ("status", "200")))] == 1
    model = (("model", "smollm2:135m"),)
    assert m[("skyllama_completion_tokens_total", model)] == sum(r["eval_count"] for r in replies)
    assert m[("skyllama_prompt_tokens_total", model)] == sum(r["prompt_eval_count"] for r in replies)
    assert m[("skyllama_time_to_first_token_seconds_count", model)] == 2
    assert m[("skyllama_time_per_output_token_seconds_count", model)] == 2
    assert m[("skyllama_loaded_models", ())] == 2
    assert m[("skyllama_queue_depth", ())] == 0
