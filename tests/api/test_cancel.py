"""``X-Request-Id`` and ``DELETE /api/requests/{id}``: a long generation stops within a token."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from serving import RunningServer


def test_request_id_is_echoed_or_made(demo_server: RunningServer) -> None:
    r = httpx.get(f"{demo_server.url}/api/tags", headers={"X-Request-Id": "my-id.1"})
    assert r.headers["x-request-id"] == "my-id.1"
    made = httpx.get(f"{demo_server.url}/api/tags", headers={"X-Request-Id": "bad id!"}).headers["x-request-id"]
    assert made and made != "bad id!"
    missing = httpx.delete(f"{demo_server.url}/api/requests/nope")
    assert missing.status_code == 404


def test_cancel_stops_a_long_generation_and_frees_the_slot(demo_server: RunningServer) -> None:
    url = demo_server.url
    body = {"model": "smollm2:135m", "prompt": "Write a long story.", "options": {"num_predict": 2000, "num_ctx": 2048}}
    lines: list[dict[str, Any]] = []
    started = threading.Event()
    ended: dict[str, float] = {}

    def stream() -> None:
        with httpx.stream("POST", f"{url}/api/generate", json=body, headers={"X-Request-Id": "long-1"},
                          timeout=120) as r:
            for line in r.iter_lines():
                lines.append(json.loads(line))
                started.set()
        ended["at"] = time.time()

    worker = threading.Thread(target=stream)
    worker.start()
    assert started.wait(60)
    time.sleep(0.3)
    asked = time.time()
    r = httpx.delete(f"{url}/api/requests/long-1")
    assert r.status_code == 200 and r.json()["cancelled"] == 1
    worker.join(30)
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "cancel"
    assert final["eval_count"] < 2000
    assert ended["at"] - asked < 2.0
    nxt = httpx.post(f"{url}/api/generate", json={**body, "stream": False, "options": {"num_predict": 2}}, timeout=60)
    assert nxt.status_code == 200 and nxt.json()["done_reason"] == "length"
