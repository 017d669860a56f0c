"""Every performance workload against its baseline in one run: a table on stdout, JSON in bench-results/.

Run: ``.venv/bin/python tests/bench/run_all.py [--repeats 5] [--only embed,generate,...]``.

- embed: ``/api/embed`` over HTTP (16x32 sequential, 16x32 concurrent, 1x512) versus
  sentence-transformers in-process (the ``bench`` extra; skipped when not installed) and
  llama-cpp-python's ``Llama.embed`` in-process, all-minilm; min cosine versus the reference.
- generate: decode tokens/s and time to first token, ``/api/generate`` (raw prompt, greedy) versus
  llama-cpp-python's ``Llama.generate`` in-process, SmolLM2, same GGUF, context and threads
  (the server without its prompt cache: both sides evaluate the whole prompt every run).
- concurrency: 1, 2, 4, 8 clients, each sending requests back to back, for chat and for embed:
  aggregate throughput and p50/p99 latency, and the ratio of 8 clients' throughput to one's, on a
  server with ``OLLAMA_NUM_PARALLEL=8``; then the engine's own ceiling: 8 chats decoded in shared
  batches in-process versus one after another (what batching can give on this hardware at all).
- cold: process start to the first token (``skyllama serve`` on a folder with the model) versus
  a bare ``python -c`` that loads the GGUF with llama-cpp-python and decodes one token.
- cold-phases: the Lambda inference function's cold start phase by phase (bench_cold_phases.py,
  moto's server) and its total versus the same bare load.
- storage: blob upload (``POST /api/blobs``), blob download (``GET /v2/.../blobs``) and a pull
  from a second instance on 127.0.0.1, each versus a plain file copy of the same bytes.
- peer (bench_peer.py): skyllama versus llama-cpp-python's own server (``python -m llama_cpp.server``,
  the ``bench`` extra) on the same GGUFs: ``peer.chat`` decode tokens/s (/v1 and /api/chat) and
  TTFT, ``peer.turns`` a 6-turn growing chat, ``peer.tools`` a second conversation on the same
  ~4k-token tool list, ``peer.embed`` /v1/embeddings and /api/embed 16x32, ``peer.concurrency`` 4
  and 8 concurrent chats; ``--only peer.turns`` runs one family alone.

Every side is measured inside one run, interleaved, with the same persistent HTTP client (creating
an ``httpx.Client`` costs ~30 ms of SSL setup, which is not the server's time). Figures are the
median of ``--repeats`` runs with the spread as min..max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _common import ROWS, demo_folder, gguf_path, min_cosine, row, serve_in_subprocess, short_texts
from bench_peer import PEER_FAMILIES, run_peer
from bench_storage import bench_storage

from skyllama.demo import SMOLLM2_NAME
from skyllama.engine.llama import physical_cores

ROOT = Path(__file__).resolve().parents[2]
EMBED_MODEL = "all-minilm"
PROMPT = "<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"
CONCURRENCY_LEVELS = [1, 2, 4, 8]
GEN_OPTIONS = {"num_ctx": 2048, "num_batch": 512, "temperature": 0, "seed": 1}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -- embeddings -------------------------------------------------------------------------------------

def http_embed(client: httpx.Client, texts: list[str]) -> list[list[float]]:
    r = client.post("/api/embed", json={"model": EMBED_MODEL, "input": texts, "keep_alive": -1})
    r.raise_for_status()
    vectors: list[list[float]] = r.json()["embeddings"]
    return vectors


async def _gather_embed(url: str, chunks: list[list[str]]) -> list[list[float]]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        async def one(chunk: list[str]) -> list[list[float]]:
            r = await client.post("/api/embed", json={"model": EMBED_MODEL, "input": chunk, "keep_alive": -1})
            r.raise_for_status()
            vectors: list[list[float]] = r.json()["embeddings"]
            return vectors
        parts = await asyncio.gather(*(one(c) for c in chunks))
    return [v for p in parts for v in p]


def bench_embed(url: str, folder: Path, repeats: int) -> None:
    import llama_cpp

    texts = short_texts()
    chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
    llm = llama_cpp.Llama(gguf_path(folder, EMBED_MODEL), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                          n_threads=physical_cores(), n_threads_batch=physical_cores(), verbose=False)
    cases: dict[str, Callable[[], list[list[float]]]] = {}
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        from skyllama.convert.demo_assets import minilm_model_dir

        st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
        cases["sentence-transformers"] = lambda: st.encode(texts, batch_size=32, normalize_embeddings=True).tolist()
    except ImportError:
        print("embed: sentence-transformers not installed (pip install -e '.[bench]'): that baseline is skipped")
    cases["llama-cpp-python"] = lambda: llm.embed(texts, normalize=True)  # type: ignore[return-value]
    with httpx.Client(base_url=url, timeout=600) as client:
        cases["http 16x32 sequential"] = lambda: [v for c in chunks for v in http_embed(client, c)]
        cases["http 16x32 concurrent"] = lambda: asyncio.run(_gather_embed(url, chunks))
        cases["http 1x512"] = lambda: http_embed(client, texts)
        http_embed(client, texts[:8])
        rates: dict[str, list[float]] = {name: [] for name in cases}
        answers: dict[str, list[list[float]]] = {}
        for fn in cases.values():
            fn()  # warm up
        for _ in range(repeats):
            for name, fn in cases.items():
                seconds, answers[name] = timed(fn)
                rates[name].append(len(texts) / seconds)
    llm.close()
    reference = "sentence-transformers" if "sentence-transformers" in cases else "llama-cpp-python"
    for name in ("http 16x32 sequential", "http 16x32 concurrent", "http 1x512"):
        cos = min_cosine(answers[name], answers[reference])
        for base in ("sentence-transformers", "llama-cpp-python"):
            if base in rates:
                target = ">= 1.0x" if base == "sentence-transformers" else ""
                row("embed", f"{name} texts/s", rates[name], rates[base], base, "texts/s", target,
                    min_cosine_vs_reference=cos)
        print(f"{'':12} min cosine vs {reference}: {cos:.6f} (target >= 0.9999)")


# -- generation -------------------------------------------------------------------------------------

def http_generate(client: httpx.Client, n: int) -> tuple[float, float]:
    body = {"model": SMOLLM2_NAME, "prompt": PROMPT, "raw": True, "keep_alive": -1,
            "options": {**GEN_OPTIONS, "num_predict": n}}
    times: list[float] = []
    start = time.perf_counter()
    with client.stream("POST", "/api/generate", json=body) as r:
        for line in r.iter_lines():
            if json.loads(line).get("response"):
                times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0]), (times[0] - start) * 1e3


def local_generate(llm: Any, n: int) -> tuple[float, float]:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    start = time.perf_counter()
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.reset()
    times: list[float] = []
    for token in llm.generate(tokens, temp=0.0, top_k=40, top_p=0.9, min_p=0.0, repeat_penalty=1.1):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        llm.detokenize([token])
        times.append(time.perf_counter())
        if len(times) >= n:
            break
    return (len(times) - 1) / (times[-1] - times[0]), (times[0] - start) * 1e3


def bench_generate(url: str, folder: Path, repeats: int, n: int) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(gguf_path(folder, SMOLLM2_NAME), n_ctx=2048, n_batch=512, n_ubatch=512,
                          n_threads=physical_cores(), n_threads_batch=physical_cores(), verbose=False)
    with httpx.Client(base_url=url, timeout=600) as client:
        http_generate(client, 8)
        local_generate(llm, 8)
        ours, base = [], []
        for _ in range(repeats):
            ours.append(http_generate(client, n))
            base.append(local_generate(llm, n))
    llm.close()
    row("generate", f"decode tokens/s ({n} tokens)", [r[0] for r in ours], [r[0] for r in base],
        "llama-cpp-python", "tokens/s", ">= 0.95x")
    row("generate", "time to first token", [r[1] for r in ours], [r[1] for r in base], "llama-cpp-python",
        "ms", "<= +15 ms", higher_is_better=False)


# -- concurrency ------------------------------------------------------------------------------------

async def _clients(url: str, n_clients: int, per_client: int, kind: str) -> tuple[float, list[float], int]:
    """``n_clients`` clients sending ``per_client`` requests each; (wall s, latencies ms, units done)."""
    latencies: list[float] = []
    units = 0

    async def client_loop(client: httpx.AsyncClient, i: int) -> None:
        nonlocal units
        for j in range(per_client):
            start = time.perf_counter()
            if kind == "chat":
                r = await client.post("/api/chat", json={
                    "model": SMOLLM2_NAME, "stream": False, "keep_alive": -1,
                    "messages": [{"role": "user", "content": f"Tell me a fact about the number {i * 100 + j}."}],
                    "options": {**GEN_OPTIONS, "num_predict": 16}})
                units += r.json()["eval_count"]
            else:
                texts = short_texts(32)
                r = await client.post("/api/embed", json={"model": EMBED_MODEL, "input": texts, "keep_alive": -1})
                units += len(r.json()["embeddings"])
            r.raise_for_status()
            latencies.append((time.perf_counter() - start) * 1e3)

    async with httpx.AsyncClient(base_url=url, timeout=600,
                                 limits=httpx.Limits(max_connections=n_clients + 2)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client, i) for i in range(n_clients)))
        return time.perf_counter() - start, latencies, units


def bench_concurrency(url: str, levels: list[int], repeats: int) -> None:
    for kind, unit in (("chat", "tokens/s"), ("embed", "texts/s")):
        asyncio.run(_clients(url, 1, 1, kind))
        one: list[float] = []
        for n in levels:
            throughputs, latencies = [], []
            for _ in range(repeats):
                wall, run_latencies, units = asyncio.run(_clients(url, n, max(2, 16 // n), kind))
                throughputs.append(units / wall)
                latencies += run_latencies
            latencies.sort()
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            if n == levels[0]:
                one = throughputs
            row("concurrency", f"{kind} {n} clients throughput", throughputs, one, f"{levels[0]} client",
                unit, ">= 1.5x at 8" if n == 8 else "", p50_ms=p50, p99_ms=p99)
            print(f"{'':12} {kind} {n} clients: p50 {p50:.0f} ms, p99 {p99:.0f} ms, {len(latencies)} requests")


def bench_engine_ceiling(folder: Path, n_seqs: int, repeats: int) -> None:
    """What batching can give on this hardware: the engine in-process, no HTTP, ``n_seqs`` chats decoded
    in shared batches against one after another (the same prompts and token count as the chat clients)."""
    import threading

    from skyllama.engine.base import Generated, LoadSpec, Sampling
    from skyllama.engine.multiseq import MultiSeqModel

    model = MultiSeqModel(LoadSpec(path=gguf_path(folder, SMOLLM2_NAME), n_ctx=2048), n_seqs)
    greedy = Sampling(temperature=0, num_predict=16)
    prompts = [model.tokenize(f"<|im_start|>user\nTell me a fact about the number {i * 100}.<|im_end|>\n"
                              "<|im_start|>assistant\n") for i in range(n_seqs)]

    def run(prompt: list[int], done: list[int]) -> None:
        done += [len(g.tokens) for g in model.generate(prompt, greedy) if isinstance(g, Generated)]

    def together() -> float:
        done: list[int] = []
        threads = [threading.Thread(target=run, args=(p, done)) for p in prompts]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - start)

    def one_by_one() -> float:
        done: list[int] = []
        start = time.perf_counter()
        for p in prompts:
            run(p, done)
        return sum(done) / (time.perf_counter() - start)

    try:
        together(), one_by_one()  # warm up
        batched, serial = [], []
        for _ in range(repeats):
            batched.append(together())
            serial.append(one_by_one())
    finally:
        model.close()
    row("concurrency", f"engine ceiling: {n_seqs} chats batched, in-process", batched, serial,
        "one after another", "tokens/s", "the most HTTP batching can reach here")


# -- cold start -------------------------------------------------------------------------------------

BARE = """import sys, time, llama_cpp
llm = llama_cpp.Llama(sys.argv[1], n_ctx=2048, n_batch=512, n_ubatch=512, verbose=False)
tokens = llm.tokenize(sys.argv[2].encode(), add_bos=False, special=True)
next(iter(llm.generate(tokens, temp=0.0)))
print("first", flush=True)
"""


def cold_serve(folder: Path) -> float:
    from serving import free_port

    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(folder)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "skyllama", "serve", "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            while True:
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    time.sleep(0.01)
            body = {"model": SMOLLM2_NAME, "prompt": PROMPT, "raw": True, "options": {**GEN_OPTIONS, "num_predict": 1}}
            with client.stream("POST", "/api/generate", json=body) as r:
                for line in r.iter_lines():
                    if json.loads(line).get("response") is not None:
                        break
        return (time.perf_counter() - start) * 1e3
    finally:
        proc.terminate()
        proc.wait(30)


def cold_bare(path: str) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BARE, path, PROMPT], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    elapsed = (time.perf_counter() - start) * 1e3
    proc.wait(30)
    return elapsed


def bench_cold(folder: Path, repeats: int) -> None:
    path = gguf_path(folder, SMOLLM2_NAME)
    ours, base = [], []
    for _ in range(repeats):
        ours.append(cold_serve(folder))
        base.append(cold_bare(path))
    row("cold start", "process start to first token", ours, base, "bare llama-cpp-python", "ms", "<= 2.0x",
        higher_is_better=False, kind="ratio")


def bench_cold_phases(repeats: int) -> None:
    """The Lambda inference function's cold start phase by phase (bench_cold_phases.py) and its total."""
    import bench_cold_phases as phases  # imports run_all back (bench_lambda_cold): only once run_all is loaded

    ours, bare = phases.measure(repeats)
    phases.print_phases(ours, bare)
    row("cold start", "Lambda function, phases summed", [sum(r.values()) * 1e3 for r in ours],
        [sum(r.values()) * 1e3 for r in bare], "bare llama-cpp-python", "ms", "<= 2.0x", higher_is_better=False,
        kind="ratio")


# -- main -------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64, help="decode tokens per generation run")
    parser.add_argument("--only", default="embed,generate,concurrency,cold,cold-phases,storage,peer",
                        help="families, comma-separated; peer is peer.chat,peer.turns,peer.tools,peer.embed,"
                             "peer.concurrency (each may be given alone)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    only = set(args.only.split(","))
    peer = {f for f in PEER_FAMILIES if "peer" in only or f"peer.{f}" in only}
    load = os.getloadavg()
    print(f"skyllama benchmarks: {os.cpu_count()} CPUs, load average {load[0]:.2f}, repeats {args.repeats}; "
          f"median [min..max]")
    folder = demo_folder()
    if "embed" in only:
        with serve_in_subprocess(folder) as url:
            bench_embed(url, folder, args.repeats)
    if "generate" in only:
        # The in-process side resets its context before every run and evaluates the whole prompt;
        # so does the server here (no prompt cache), like for like. The cache's gain is measured in
        # the peer.turns and peer.tools rows.
        with serve_in_subprocess(folder, prompt_cache=False) as url:
            bench_generate(url, folder, args.repeats, args.tokens)
    if "concurrency" in only:
        # OLLAMA_NUM_PARALLEL=8, as a user serving 8 clients sets it (Ollama's default, and ours, is 1)
        with serve_in_subprocess(folder, num_parallel=CONCURRENCY_LEVELS[-1]) as url:
            bench_concurrency(url, CONCURRENCY_LEVELS, args.repeats)
        bench_engine_ceiling(folder, CONCURRENCY_LEVELS[-1], args.repeats)
    if "cold" in only:
        bench_cold(folder, max(3, args.repeats // 2))
    if "cold-phases" in only:
        bench_cold_phases(max(3, args.repeats // 2))
    if "storage" in only:
        bench_storage(folder, args.repeats)
    if peer:
        run_peer(folder, peer, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"cpus": os.cpu_count(), "load_average": load, "repeats": args.repeats,
                               "rows": ROWS}, indent=2))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
