"""``/api/embed`` texts/s over HTTP for all-minilm versus sentence-transformers in-process, in one run.

The server (its own process, on 127.0.0.1) serves ``all-minilm`` as ``skyllama serve --demo``
creates it: converted from the very safetensors folder that sentence-transformers loads here.
512 short texts are embedded as one request of 512 and as 16 requests of 32 (one after another,
and all at once), against ``SentenceTransformer(folder).encode(texts, batch_size=32)``; medians
over ``--repeats``. Prints texts/s, the ratios and the lowest cosine between the two answers.

Needs the ``bench`` extra (``pip install -e ".[test,bench]"``: torch 2.13.0 CPU and
sentence-transformers). Run: ``.venv/bin/python tests/bench/bench_embed_vs_sentence_transformers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable

import httpx
import numpy as np
from _common import demo_folder, median, serve_in_subprocess

from skyllama.convert.demo_assets import minilm_model_dir

MODEL = "all-minilm"
OPTIONS: dict[str, int] = {}  # request options; --threads sets num_thread
SUBJECTS = ["llamas", "the sky", "servers", "green grass", "a red bicycle", "coffee", "the stock market",
            "quantum physics", "a rainy Tuesday", "my password"]
VERBS = ["Why is", "Tell me about", "I really like", "Nobody understands", "Here is a note on",
         "What do you know about", "A short story about", "Please explain"]


def short_texts(n: int = 512) -> list[str]:
    """``n`` varied short sentences (about 8-14 tokens each)."""
    return [f"{VERBS[i % len(VERBS)]} {SUBJECTS[(i * 7) % len(SUBJECTS)]}, case number {i}?" for i in range(n)]


def http_embed(client: httpx.Client, texts: list[str]) -> list[list[float]]:
    r = client.post("/api/embed", json={"model": MODEL, "input": texts, "keep_alive": -1, "options": OPTIONS})
    r.raise_for_status()
    vectors: list[list[float]] = r.json()["embeddings"]
    assert len(vectors) == len(texts)
    return vectors


def one_request(client: httpx.Client, texts: list[str]) -> list[list[float]]:
    return http_embed(client, texts)


def sequential_requests(client: httpx.Client, texts: list[str], size: int = 32) -> list[list[float]]:
    out: list[list[float]] = []
    for i in range(0, len(texts), size):
        out += http_embed(client, texts[i : i + size])
    return out


def concurrent_requests(url: str, texts: list[str], size: int = 32) -> list[list[float]]:
    async def run() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:
            async def one(chunk: list[str]) -> list[list[float]]:
                r = await client.post("/api/embed",
                                      json={"model": MODEL, "input": chunk, "keep_alive": -1, "options": OPTIONS})
                r.raise_for_status()
                vectors: list[list[float]] = r.json()["embeddings"]
                return vectors

            parts = await asyncio.gather(*(one(texts[i : i + size]) for i in range(0, len(texts), size)))
        return [v for part in parts for v in part]

    return asyncio.run(run())


def timed(fn: Callable[[], list[list[float]]], n_texts: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = fn()
    rate = n_texts / (time.perf_counter() - start)
    return rate, np.asarray(vectors, dtype=np.float64)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for both sides (torch.set_num_threads and num_thread); default: each its own")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    if args.threads:
        torch.set_num_threads(args.threads)
        OPTIONS["num_thread"] = args.threads
    texts = short_texts(args.texts)
    st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
    folder = demo_folder()
    with serve_in_subprocess(folder) as url, httpx.Client(base_url=url, timeout=600) as client:
        http_embed(client, texts[:8])  # load the model
        st.encode(texts[:8], batch_size=32)
        runs: dict[str, list[float]] = {"http 1x512": [], "http 16x32 sequential": [], "http 16x32 concurrent": [],
                                        "sentence-transformers": []}
        answers: dict[str, np.ndarray] = {}
        cases: dict[str, Callable[[], list[list[float]]]] = {
            "http 1x512": lambda: one_request(client, texts),
            "http 16x32 sequential": lambda: sequential_requests(client, texts),
            "http 16x32 concurrent": lambda: concurrent_requests(url, texts),
            "sentence-transformers": lambda: st.encode(texts, batch_size=32, normalize_embeddings=True).tolist(),
        }
        for _ in range(args.repeats):
            for name, fn in cases.items():
                rate, vectors = timed(fn, len(texts))
                runs[name].append(rate)
                answers[name] = vectors

    reference = median(runs["sentence-transformers"])
    print(f"{len(texts)} short texts, all-minilm (F16 GGUF converted by skyllama) vs sentence-transformers "
          f"all-MiniLM-L6-v2 (torch {torch.__version__}, {torch.get_num_threads()} threads); "
          f"median of {args.repeats}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    for name, rates in runs.items():
        line = f"  {name:<24} {median(rates):8.1f} texts/s"
        if name != "sentence-transformers":
            line += f"   ratio {median(rates) / reference:5.2f}x"
            line += f"   min cosine vs sentence-transformers {min_cosine(answers[name], answers['sentence-transformers']):.6f}"
        print(line)


if __name__ == "__main__":
    main()
