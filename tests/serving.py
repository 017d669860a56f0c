"""Test helpers: a real uvicorn server on 127.0.0.1 in a background thread, and model folders
seeded with the demo models (hard-linked, so every test gets its own folder cheaply)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from skyllama.composition import Runtime, build_runtime
from skyllama.engine.base import Engine
from skyllama.http.app import create_app
from skyllama.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RunningServer:
    def __init__(self, url: str, runtime: Runtime, server: uvicorn.Server) -> None:
        self.url = url
        self.runtime = runtime
        self.server = server

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@contextmanager
def run_server(models: Path, *, engine: Engine | None = None, **overrides: Any) -> Iterator[RunningServer]:
    """Serve ``models`` on a free loopback port until the block ends (with ``engine``, a fake
    engine instead of runner processes; other keywords are settings or ``build_runtime``'s)."""
    port = free_port()
    wiring = {k: overrides.pop(k) for k in ("outbound", "stores", "clock") if k in overrides}
    overrides.setdefault("runner_spares", 0)  # most test servers load no model: no spare process to start
    settings = Settings.from_env({}, models=models, host=f"127.0.0.1:{port}",
                                 state_db=models / ".skyllama" / "state.db", **overrides)
    runtime = build_runtime(settings, engine=engine, **wiring)
    app = create_app(runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", runtime, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        runtime.close()


def clone_models(source: Path, dest: Path) -> Path:
    """Copy a models folder, hard-linking blobs (content-addressed, never modified in place)."""
    for dirpath, _dirs, files in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        if rel.parts[:1] == (".skyllama",):
            continue
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(dirpath) / name, dest / rel / name
            if rel.parts[:1] == ("blobs",):
                try:
                    os.link(src, dst)
                    continue
                except OSError:
                    pass
            shutil.copy2(src, dst)
    return dest
