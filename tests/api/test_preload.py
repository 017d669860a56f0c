"""``SKYLLAMA_PRELOAD``: models load at start, in the background, with their keep_alive."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from serving import clone_models, run_server


def test_preload_loads_models_with_keep_alive(demo_models: Path, tmp_path: Path) -> None:
    folder = clone_models(demo_models, tmp_path / "m")
    with run_server(folder, preload="smollm2:135m=-1, all-minilm=10m, missing:1b") as server:
        deadline = time.time() + 60
        rows: list[dict[str, str]] = []
        while time.time() < deadline and len(rows) < 2:
            rows = httpx.get(f"{server.url}/api/ps").json()["models"]
            time.sleep(0.1)
        by_name = {r["name"]: r for r in rows}
        assert set(by_name) == {"smollm2:135m", "all-minilm:latest"}
        assert by_name["smollm2:135m"]["expires_at"] > by_name["all-minilm:latest"]["expires_at"]
        assert by_name["smollm2:135m"]["expires_at"].startswith("2")
