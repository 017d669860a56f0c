"""Concurrency limits and cancellation through a real server with SmolLM2."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import RunningServer, clone_models, run_server

MODEL = "smollm2:135m"


@pytest.fixture
def single_slot(demo_models: Path, tmp_path: Path) -> Any:
    with run_server(clone_models(demo_models, tmp_path / "m"), num_parallel=1, max_queue=1) as server:
        yield server


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(0.02)


def scheduler(server: RunningServer) -> Any:
    assert server.runtime.scheduler is not None
    return server.runtime.scheduler


def runners(server: RunningServer) -> list[Any]:
    return list(scheduler(server)._runners.values())


def test_a_full_queue_answers_503_at_once_and_the_others_finish(single_slot: RunningServer) -> None:
    url = f"{single_slot.url}/api/generate"
    body = {"model": MODEL, "prompt": "Tell me a story.", "options": {"num_predict": 24, "num_ctx": 512}}
    results: dict[str, Any] = {}
    started = threading.Event()

    def first() -> None:
        with httpx.stream("POST", url, json=body, timeout=120) as r:
            lines = []
            for line in r.iter_lines():
                started.set()
                lines.append(line)
            results["first"] = (r.status_code, lines)

    def second() -> None:
        r = httpx.post(url, json={**body, "stream": False}, timeout=120)
        results["second"] = (r.status_code, r.json())

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert started.wait(60)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    wait_for(lambda: scheduler(single_slot)._waiting == 1)
    t0 = time.time()
    third = httpx.post(url, json={**body, "stream": False}, timeout=120)
    assert time.time() - t0 < 2.0
    assert third.status_code == 503
    assert third.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    for t in threads:
        t.join(120)
    assert results["first"][0] == 200 and '"done":true' in results["first"][1][-1]
    assert results["second"][0] == 200 and results["second"][1]["done"] is True


def test_disconnect_mid_stream_stops_generation(single_slot: RunningServer) -> None:
    body = {"model": MODEL, "prompt": "Write a very long essay about the sea.",
            "options": {"num_predict": 2000, "num_ctx": 2048, "temperature": 0.8}}
    with httpx.stream("POST", f"{single_slot.url}/api/generate", json=body, timeout=120) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i == 3:
                break
    wait_for(lambda: all(runner.refs == 0 for runner in runners(single_slot)), timeout=5)
    t0 = time.time()
    r = httpx.post(f"{single_slot.url}/api/generate", timeout=60,
                   json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2, "num_ctx": 2048}})
    assert r.status_code == 200 and time.time() - t0 < 10


def test_parallel_requests_each_get_their_own_context(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "m"), num_parallel=2) as server:
        body = {"model": MODEL, "prompt": "Name a colour.", "stream": False,
                "options": {"num_predict": 8, "num_ctx": 512, "temperature": 0}}
        out: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda: out.append(
            httpx.post(f"{server.url}/api/generate", json=body, timeout=120).json())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(out) == 2 and out[0]["response"] == out[1]["response"]
        [runner] = runners(server)
        assert 1 <= len(runner.contexts) <= 2 and runner.parallel == 2
