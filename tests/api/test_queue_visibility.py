"""``/api/ps`` extras: running and queued requests per model; per-model ``num_parallel``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from serving import clone_models, run_server


def test_ps_shows_running_and_queued(demo_models: Path, tmp_path: Path) -> None:
    folder = clone_models(demo_models, tmp_path / "m")
    with run_server(folder, num_parallel_models="smollm2:135m=1", num_parallel=4) as server:
        body = {"model": "smollm2:135m", "prompt": "Tell a story.", "stream": False,
                "options": {"num_predict": 40, "num_ctx": 512}}
        threads = [threading.Thread(target=httpx.post, args=(f"{server.url}/api/generate",),
                                    kwargs={"json": body, "timeout": 120}) for _ in range(3)]
        for t in threads:
            t.start()
        seen = []
        deadline = time.time() + 60
        while time.time() < deadline:
            rows = httpx.get(f"{server.url}/api/ps").json()["models"]
            if rows and rows[0]["running"] == 1 and rows[0]["queued"] == 2:
                seen = rows
                break
            time.sleep(0.05)
        for t in threads:
            t.join(120)
        assert seen and seen[0]["num_parallel"] == 1 and seen[0]["context_length"] == 512
        idle = httpx.get(f"{server.url}/api/ps").json()["models"][0]
        assert idle["running"] == 0 and idle["queued"] == 0
