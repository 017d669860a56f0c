"""``DELETE /api/requests/{id}`` with auth on, real SmolLM2-135M on a real server.

A key may cancel only its owner's in-flight requests (403 for another owner's, no flag set), an
admin key any, and no key is a 401 before the route runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import RunningServer, clone_models, run_server

BODY = {
    "model": "smollm2:135m",
    "prompt": "Write a long story.",
    "options": {"num_predict": 400, "num_ctx": 1024},
}


@pytest.fixture(scope="module")
def server(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = clone_models(demo_models, tmp_path_factory.mktemp("cancel-auth") / "models")
    with run_server(folder, auth="on") as running:
        yield running


def key(server: RunningServer, owner: str, *scopes: str) -> dict[str, str]:
    secret, _ = server.runtime.keys.create_key(
        name="t", owner=owner, scopes=list(scopes or ("inference",))
    )
    return {"Authorization": f"Bearer {secret}"}


def start_generation(
    server: RunningServer, headers: dict[str, str], request_id: str
) -> tuple[threading.Thread, list]:
    """Stream a long generation in a thread; returns once its first chunk arrived."""
    lines: list[dict[str, Any]] = []
    started = threading.Event()

    def stream() -> None:
        with httpx.stream(
            "POST",
            f"{server.url}/api/generate",
            json=BODY,
            headers={**headers, "X-Request-Id": request_id},
            timeout=120,
        ) as r:
            for line in r.iter_lines():
                lines.append(json.loads(line))
                started.set()

    worker = threading.Thread(target=stream)
    worker.start()
    assert started.wait(60)
    return worker, lines


def test_owner_cancels_another_owner_is_forbidden(server: RunningServer) -> None:
    alice, alice2, bob = key(server, "alice"), key(server, "alice"), key(server, "bob")
    worker, lines = start_generation(server, alice, "alice-run")
    url = f"{server.url}/api/requests/alice-run"
    assert httpx.delete(url).status_code == 401
    refused = httpx.delete(url, headers=bob)
    assert refused.status_code == 403 and "error" in refused.json()
    # A second key of the same owner may cancel (ownership is by owner, not by key).
    ok = httpx.delete(url, headers=alice2)
    assert ok.status_code == 200 and ok.json()["cancelled"] == 1
    worker.join(30)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "cancel"
    assert lines[-1]["eval_count"] < BODY["options"]["num_predict"]  # type: ignore[index]


def test_bobs_refused_cancel_leaves_the_generation_running(server: RunningServer) -> None:
    alice, bob = key(server, "alice"), key(server, "bob")
    worker, lines = start_generation(server, alice, "alice-run-2")
    assert httpx.delete(f"{server.url}/api/requests/alice-run-2", headers=bob).status_code == 403
    worker.join(120)
    # ran to num_predict or the end of its answer: the refused cancel set no flag
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] in ("length", "stop")


def test_admin_cancels_anyones_and_unknown_is_404(server: RunningServer) -> None:
    alice, admin = key(server, "alice"), key(server, "ops", "admin")
    worker, lines = start_generation(server, alice, "alice-run-3")
    assert httpx.delete(f"{server.url}/api/requests/alice-run-3", headers=admin).status_code == 200
    worker.join(30)
    assert lines[-1]["done_reason"] == "cancel"
    assert httpx.delete(f"{server.url}/api/requests/nope", headers=alice).status_code == 404
