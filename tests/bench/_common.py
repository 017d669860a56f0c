"""Shared setup for the benchmark scripts: a demo models folder and a real server on 127.0.0.1."""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving import run_server  # noqa: E402
from skyllama.composition import build_runtime  # noqa: E402
from skyllama.demo import import_gguf, install_demo_models  # noqa: E402
from skyllama.settings import Settings  # noqa: E402

__all__ = ["ROWS", "demo_folder", "gguf_path", "median", "min_cosine", "row", "run_server", "serve_in_subprocess",
           "short_texts", "stats"]

ROWS: list[dict[str, Any]] = []  # every row printed so far, for run_all.py's JSON


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


# -- workloads more than one script sends ---------------------------------------------------------

def short_texts(n: int = 512) -> list[str]:
    subjects = ["llamas", "the sky", "servers", "green grass", "a red bicycle", "coffee", "quantum physics"]
    verbs = ["Why is", "Tell me about", "I really like", "Nobody understands", "A short story about"]
    return [f"{verbs[i % len(verbs)]} {subjects[(i * 7) % len(subjects)]}, case number {i}?" for i in range(n)]


def min_cosine(a: list[list[float]], b: list[list[float]]) -> float:
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))).min())


# -- the table that run_all.py prints --------------------------------------------------------------

def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def row(workload: str, metric: str, ours: list[float], base: list[float] | None, baseline: str,
        unit: str, target: str = "", higher_is_better: bool = True,
        kind: Literal["ratio", "diff"] | None = None, **extra: Any) -> None:
    """Record and print one line of the table: our figure, the baseline's and their ratio (ours /
    baseline) or difference (ours - baseline). ``kind`` defaults to a ratio for a higher-is-better
    figure and a difference otherwise (TTFT overhead in ms); a lower-is-better ratio (a TTFT that
    must stay under 1.0x the peer's) passes ``kind="ratio"``."""
    kind = kind or ("ratio" if higher_is_better else "diff")
    entry: dict[str, Any] = {"workload": workload, "metric": metric, "unit": unit, "ours": stats(ours),
                             "baseline_name": baseline, "target": target, "ratio_kind": kind,
                             "higher_is_better": higher_is_better, **extra}
    if base:
        entry["baseline"] = stats(base)
        b, o = entry["baseline"]["median"], entry["ours"]["median"]
        entry["ratio"] = o / b if kind == "ratio" else o - b
    ROWS.append(entry)
    print_row(entry)


def print_row(e: dict[str, Any]) -> None:
    o = e["ours"]
    text = f"{e['workload']:<12} {e['metric']:<34} {o['median']:10.2f} [{o['min']:.2f}..{o['max']:.2f}] {e['unit']:<9}"
    if "baseline" in e:
        ratio = f"{e['ratio']:.3f}x" if e["ratio_kind"] == "ratio" else f"{e['ratio']:+.1f} {e['unit']}"
        text += f" vs {e['baseline_name']} {e['baseline']['median']:.2f}: {ratio}"
    if e.get("target"):
        text += f"  (target {e['target']})"
    print(text, flush=True)
