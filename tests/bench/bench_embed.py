"""``/api/embed`` texts/s over HTTP for 512 short texts versus llama-cpp-python in-process.

Run: ``.venv/bin/python tests/bench/bench_embed.py --gguf all-minilm.gguf [--repeats 3]``: the
embedding model is imported into a fresh demo folder and measured on both sides. (Without
``--gguf`` the demo SmolLM2 is used, mean pooled; that run did not finish in 5 minutes here and
is not a meaningful embedding benchmark.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
import llama_cpp
from _common import demo_folder, gguf_path, median, serve_in_subprocess

from skyllama.demo import SMOLLM2_NAME
from skyllama.engine.llama import physical_cores

TEXTS = [f"Short sentence number {i} about llamas, clouds and servers." for i in range(512)]


def over_http(url: str, model: str) -> float:
    start = time.perf_counter()
    r = httpx.post(f"{url}/api/embed", json={"model": model, "input": TEXTS, "keep_alive": -1}, timeout=600)
    r.raise_for_status()
    assert len(r.json()["embeddings"]) == len(TEXTS)
    return len(TEXTS) / (time.perf_counter() - start)


def in_process(llm: llama_cpp.Llama) -> float:
    start = time.perf_counter()
    vectors = llm.embed(TEXTS, normalize=True)
    assert len(vectors) == len(TEXTS)
    return len(TEXTS) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    name = "bench-embed" if args.gguf else SMOLLM2_NAME
    folder = demo_folder(args.gguf, name)
    path = gguf_path(folder, name)
    with serve_in_subprocess(folder) as url:
        over_http(url, name)  # load + warm up
        ctx = 512
        pooling = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED if args.gguf else llama_cpp.LLAMA_POOLING_TYPE_MEAN
        llm = llama_cpp.Llama(path, embedding=True, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, pooling_type=pooling,
                              n_threads=physical_cores(), n_threads_batch=physical_cores(), verbose=False)
        in_process(llm)
        http_runs, local_runs = [], []
        for _ in range(args.repeats):
            http_runs.append(over_http(url, name))
            local_runs.append(in_process(llm))
        llm.close()
    http, local = median(http_runs), median(local_runs)
    print(f"model {name}: {len(TEXTS)} texts, repeats {args.repeats}")
    print(f"texts/s  http {http:8.1f}   in-process (Llama.embed, n_batch=n_ubatch={ctx}) {local:8.1f}   "
          f"ratio {http / local:.3f}x")


if __name__ == "__main__":
    main()
