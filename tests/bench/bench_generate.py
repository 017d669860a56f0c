"""Decode speed of ``/api/generate`` over HTTP versus llama-cpp-python in-process, same GGUF.

Run: ``.venv/bin/python tests/bench/bench_generate.py [--repeats 5] [--tokens 128] [--threads N]``. Both sides use
the same prompt tokens (raw mode), n_ctx, n_batch, threads and greedy sampling; decode tokens/s is
measured the same way on both: tokens after the first over the time from first to last token.
"""

from __future__ import annotations

import argparse
import json
import time

import httpx
import llama_cpp
from _common import demo_folder, gguf_path, median, serve_in_subprocess

from skyllama.demo import SMOLLM2_NAME
from skyllama.engine.llama import physical_cores

PROMPT = "<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"


def over_http(
    client: httpx.Client, n: int, ctx: int, batch: int, threads: int
) -> tuple[float, float, int, float]:
    body = {
        "model": SMOLLM2_NAME,
        "prompt": PROMPT,
        "raw": True,
        "keep_alive": -1,
        "options": {
            "num_predict": n,
            "num_ctx": ctx,
            "num_batch": batch,
            "num_thread": threads,
            "temperature": 0,
            "seed": 1,
        },
    }
    times: list[float] = []
    start = time.perf_counter()
    # One persistent client: a new one per call adds a TCP connect (~30 ms) to the TTFT.
    with client.stream("POST", "/api/generate", json=body) as r:
        for line in r.iter_lines():
            event = json.loads(line)
            if event.get("response"):
                times.append(time.perf_counter())
    server_tps = event["eval_count"] / event["eval_duration"] * 1e9
    return (len(times) - 1) / (times[-1] - times[0]), times[0] - start, len(times), server_tps


def in_process(llm: llama_cpp.Llama, n: int) -> tuple[float, float, int]:
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.reset()
    times: list[float] = []
    start = time.perf_counter()
    for token in llm.generate(tokens, temp=0.0, top_k=40, top_p=0.9, min_p=0.0, repeat_penalty=1.1):
        if llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm._model.model), token):
            break
        llm.detokenize([token])
        times.append(time.perf_counter())
        if len(times) >= n:
            break
    return (len(times) - 1) / (times[-1] - times[0]), times[0] - start, len(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads on both sides (0 = physical cores)"
    )
    args = parser.parse_args()
    threads = args.threads or physical_cores()
    folder = demo_folder()
    with serve_in_subprocess(folder) as url, httpx.Client(base_url=url, timeout=600) as client:
        path = gguf_path(folder, SMOLLM2_NAME)
        over_http(client, 8, args.ctx, args.batch, threads)  # load + warm up (and open the connection)
        llm = llama_cpp.Llama(
            path,
            n_ctx=args.ctx,
            n_batch=args.batch,
            n_ubatch=args.batch,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        in_process(llm, 8)
        http_runs, local_runs = [], []
        for _ in range(args.repeats):  # interleaved, so background load hits both sides alike
            http_runs.append(over_http(client, args.tokens, args.ctx, args.batch, threads))
            local_runs.append(in_process(llm, args.tokens))
        llm.close()
    http_tps, local_tps = median([r[0] for r in http_runs]), median([r[0] for r in local_runs])
    http_ttft, local_ttft = median([r[1] for r in http_runs]), median([r[1] for r in local_runs])
    print(
        f"tokens per run: http {http_runs[0][2]}, in-process {local_runs[0][2]}; repeats {args.repeats}; "
        f"threads {threads}"
    )
    print(
        f"decode tokens/s  http {http_tps:8.1f}   in-process {local_tps:8.1f}   ratio {http_tps / local_tps:.3f}x"
    )
    print(f"server-side eval_count/eval_duration: {median([r[3] for r in http_runs]):.1f} tokens/s")
    print(
        f"TTFT ms          http {http_ttft * 1e3:8.1f}   in-process {local_ttft * 1e3:8.1f}   "
        f"difference {(http_ttft - local_ttft) * 1e3:+.1f} ms"
    )


if __name__ == "__main__":
    main()
