"""Shared setup for the benchmark scripts: a demo models folder and a real server on 127.0.0.1."""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving import run_server  # noqa: E402
from skyllama.composition import build_runtime  # noqa: E402
from skyllama.demo import import_gguf, install_demo_models  # noqa: E402
from skyllama.settings import Settings  # noqa: E402

__all__ = ["demo_folder", "gguf_path", "median", "run_server", "serve_in_subprocess"]


def demo_folder(extra_gguf: Path | None = None, extra_name: str = "bench-embed") -> Path:
    """A fresh models folder with the demo models (and one more GGUF, if given)."""
    folder = Path(tempfile.mkdtemp(prefix="skyllama-bench-"))
    runtime = build_runtime(Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db"),
                            inference=False)
    install_demo_models(runtime)
    if extra_gguf is not None:
        import_gguf(runtime, extra_gguf, {"model": extra_name})
    runtime.close()
    return folder


def median(values: list[float]) -> float:
    return statistics.median(values)


def gguf_path(folder: Path, name: str) -> str:
    runtime = build_runtime(Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db"),
                            inference=False)
    path = str(runtime.catalog.model_path(runtime.catalog.get(name, None)))
    runtime.close()
    return path


def _serve(folder: Path, queue: multiprocessing.Queue, overrides: dict[str, Any]) -> None:  # type: ignore[type-arg]
    import threading

    with run_server(folder, **overrides) as server:
        queue.put(server.url)
        threading.Event().wait()


@contextmanager
def serve_in_subprocess(folder: Path, **overrides: Any) -> Iterator[str]:
    """A real server in its own process (its own GIL, as in production); yields its URL."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_serve, args=(folder, queue, overrides), daemon=True)
    process.start()
    try:
        yield queue.get(timeout=120)
    finally:
        process.terminate()
        process.join(10)
