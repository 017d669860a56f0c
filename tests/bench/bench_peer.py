"""skyllama against the peer server users would pick instead: llama-cpp-python's own OpenAI server.

Run alone: ``.venv/bin/python tests/bench/run_all.py --only peer [--repeats 3]`` (or one family:
``peer.chat``, ``peer.turns``, ``peer.tools``, ``peer.embed``, ``peer.concurrency``). Needs the
``bench`` extra (``llama-cpp-python[server]``).

The peer is ``python -m llama_cpp.server``, one process per model, on the same GGUF files skyllama
serves, with the flags a user would give it and the engine settings skyllama uses: ``--n_ctx``
(2048 for chat as skyllama's ``context_length`` here, 8192 for the tool list, 512 for all-minilm),
``--n_batch``/``--n_ubatch`` 512, ``--n_threads``/``--n_threads_batch`` = physical cores (skyllama's
default), ``--embedding true`` for all-minilm. Everything else is its default, as users run it:
``--cache`` stays off (that is its ``LlamaRAMCache`` of saved states between different prompts);
its ``Llama`` keeps the last prompt's KV cells in any case and evaluates only past the longest
common prefix, which is what the multi-turn and tool-list rows measure. It serves one request at
a time (an asyncio lock), and ``interrupt_requests`` (default on) cuts a streamed answer short when
another request waits, so the concurrent rows use non-streamed requests on both sides.

Every row: same ``httpx.Client``, the two servers interleaved within each repeat (A B A B),
median of ``--repeats``, the ratio printed with the issue's target (issue 21).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import gguf_path, median, min_cosine, row, serve_in_subprocess, short_texts
from peer_workloads import (
    TURN_TOKENS,
    TURNS,
    Streamed,
    stream_api_chat,
    stream_v1,
    tool_list,
    tools_as_system,
)

from serving import free_port
from skyllama.demo import SMOLLM2_NAME
from skyllama.engine.llama import physical_cores
from skyllama.settings import Settings

EMBED_MODEL = "all-minilm"
CHAT_CTX = 2048
TOOLS_CTX = 8192
DECODE_TOKENS = 128
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
# The setting that turns skyllama's prompt cache off (SKYLLAMA_PROMPT_CACHE, issue 21 item 1), for the
# multi-turn row's second baseline; a checkout whose Settings lack it skips that row and says so.
PROMPT_CACHE_SETTING = "prompt_cache"
W = "vs peer"
PEER_FAMILIES = ("chat", "turns", "tools", "embed", "concurrency")


@contextmanager
def peer_server(gguf: str, *, n_ctx: int, embedding: bool = False) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    threads = str(physical_cores())
    args = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx), "--n_batch", "512", "--n_ubatch", "512", "--n_threads", threads,
            "--n_threads_batch", threads, "--verbose", "false"]
    if embedding:
        args += ["--embedding", "true"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited {proc.returncode}: {proc.stderr.read()[-2000:]}"
                                   if proc.stderr else "llama_cpp.server exited")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start in 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


# Seconds between two measured runs. After an answer skyllama evaluates it into its prompt cache
# while idle (prefix_cache.py's refill: ~0.7 s of both cores for a 128-token answer here); a peer
# run started at once shares the CPU with it and measured half its decode rate (31 against 55-60
# tokens/s). Both sides get the same pause, so each run starts on an idle machine.
SETTLE_S = 3.0


def _interleaved(repeats: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each side once per repeat, in turn (A B A B), after one warm-up run of each."""
    for fn in sides.values():
        fn()
    out: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            time.sleep(SETTLE_S)
            out[name].append(fn())
    return out


def bench_chat(ours: httpx.Client, peer: httpx.Client, repeats: int) -> None:
    """Decode tokens/s over 128 streamed tokens, and the time to the first token of a short prompt."""
    counter = iter(range(10**6))

    def short() -> list[dict[str, Any]]:  # a new prompt each time: no side may answer it from its cache
        return [{"role": "user", "content": f"Say hello to visitor number {next(counter)}."}]

    runs = _interleaved(repeats, {
        "v1": lambda: stream_v1(ours, SMOLLM2_NAME, STORY, DECODE_TOKENS).decode_per_s,
        "api": lambda: stream_api_chat(ours, SMOLLM2_NAME, STORY, DECODE_TOKENS, num_ctx=CHAT_CTX).decode_per_s,
        "peer": lambda: stream_v1(peer, SMOLLM2_NAME, STORY, DECODE_TOKENS).decode_per_s,
    })
    row(W, f"chat decode, /v1 streamed {DECODE_TOKENS} tok", runs["v1"], runs["peer"], "peer /v1", "tokens/s",
        ">= 1.0x")
    row(W, f"chat decode, /api/chat {DECODE_TOKENS} tok", runs["api"], runs["peer"], "peer /v1", "tokens/s",
        ">= 1.0x")
    ttft = _interleaved(repeats, {
        "ours": lambda: stream_v1(ours, SMOLLM2_NAME, short(), 4).ttft_ms,
        "peer": lambda: stream_v1(peer, SMOLLM2_NAME, short(), 4).ttft_ms,
    })
    row(W, "TTFT, one short prompt (/v1)", ttft["ours"], ttft["peer"], "peer", "ms", "<= 1.0x",
        higher_is_better=False, kind="ratio")


def _conversation_ttfts(clients: dict[str, httpx.Client], n: int) -> dict[str, list[float]]:
    """One 6-turn chat per client, turn by turn in turn (A B A B); each side sends back its own replies,
    as a chat UI does. Returns every turn's TTFT in ms per side."""
    histories: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    ttfts: dict[str, list[float]] = {name: [] for name in clients}
    for i, text in enumerate(TURNS):
        for name, client in clients.items():
            history = histories[name]
            history.append({"role": "user", "content": text.format(n=n) if i == 0 else text})
            time.sleep(SETTLE_S)  # the previous side's refill must not share the CPU with this turn
            answer: Streamed = stream_v1(client, SMOLLM2_NAME, history, TURN_TOKENS)
            history.append({"role": "assistant", "content": answer.text})
            ttfts[name].append(answer.ttft_ms)
    return ttfts


def bench_turns(clients: dict[str, httpx.Client], repeats: int) -> None:
    """A 6-turn chat whose history grows: TTFT of turns 2-6 (each repeat a new conversation)."""
    _conversation_ttfts(clients, -1)  # warm-up
    first: dict[str, list[float]] = {name: [] for name in clients}
    later: dict[str, list[float]] = {name: [] for name in clients}
    for n in range(repeats):
        for name, ttfts in _conversation_ttfts(clients, n).items():
            first[name].append(ttfts[0])
            later[name].append(median(ttfts[1:]))
    row(W, "multi-turn: TTFT of turns 2-6", later["ours"], later["peer"], "peer", "ms", "<= 1.0x",
        higher_is_better=False, kind="ratio", turn1_ms=median(first["ours"]), peer_turn1_ms=median(first["peer"]))
    if "no cache" in clients:
        row(W, "multi-turn: TTFT of turns 2-6", later["ours"], later["no cache"], "skyllama without cache", "ms",
            "<= 0.3x", higher_is_better=False, kind="ratio")
    else:
        print(f"{'':12} multi-turn without the cache: not measured (this checkout has no Settings.{PROMPT_CACHE_SETTING})")
    print(f"{'':12} turn 1 TTFT: skyllama {median(first['ours']):.0f} ms, peer {median(first['peer']):.0f} ms")


def bench_tools(ours: httpx.Client, peer: httpx.Client, repeats: int) -> None:
    """Two conversations that start with the same ~4k-token tool list: TTFT of the second against the first.
    skyllama gets ``tools`` on /api/chat with num_ctx 8192 (as Open WebUI sends them to Ollama); the
    peer the same text as its system message."""
    firsts: dict[str, list[float]] = {"ours": [], "peer": []}
    seconds: dict[str, list[float]] = {"ours": [], "peer": []}
    prompt_tokens = None
    stream_api_chat(ours, SMOLLM2_NAME, [{"role": "user", "content": "Hi"}], 1, num_ctx=TOOLS_CTX)  # load at 8192
    for n in range(repeats):
        tools = tool_list(n)
        system = {"role": "system", "content": tools_as_system(tools)}
        for k, (store, question) in enumerate(((firsts, "Say hello in one short sentence."),
                                              (seconds, "What is the capital of France? Answer in one word."))):
            user = [{"role": "user", "content": question}]
            answer = stream_api_chat(ours, SMOLLM2_NAME, user, 8, num_ctx=TOOLS_CTX, tools=tools)
            store["ours"].append(answer.ttft_ms)
            if k == 0:
                prompt_tokens = answer.prompt_tokens
            store["peer"].append(stream_v1(peer, SMOLLM2_NAME, [system, *user], 8).ttft_ms)
    row(W, "tool list: 2nd conversation TTFT", seconds["ours"], firsts["ours"], "skyllama's 1st", "ms", "<= 0.2x",
        higher_is_better=False, kind="ratio", first_prompt_tokens=prompt_tokens)
    row(W, "tool list: 2nd conversation TTFT", seconds["peer"], firsts["peer"], "peer's 1st", "ms", "",
        higher_is_better=False, kind="ratio")
    row(W, "tool list: 1st conversation TTFT", firsts["ours"], firsts["peer"], "peer", "ms", "",
        higher_is_better=False, kind="ratio")
    row(W, "tool list: 2nd conversation TTFT", seconds["ours"], seconds["peer"], "peer", "ms", "",
        higher_is_better=False, kind="ratio")
    print(f"{'':12} tool list prompt: {prompt_tokens} tokens (skyllama's prompt_eval_count of a 1st conversation)")


def _embed(client: httpx.Client, path: str, texts: list[str]) -> list[list[float]]:
    r = client.post(path, json={"model": EMBED_MODEL, "input": texts})
    r.raise_for_status()
    body = r.json()
    vectors: list[list[float]] = body["embeddings"] if path == "/api/embed" else [d["embedding"] for d in body["data"]]
    assert len(vectors) == len(texts)
    return vectors


def bench_embed(ours: httpx.Client, peer: httpx.Client, repeats: int) -> None:
    """512 texts in 16 requests of 32, one after another: skyllama's /v1/embeddings and /api/embed against
    the peer's /v1/embeddings (and sentence-transformers in-process, when installed)."""
    texts = short_texts()
    chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
    answers: dict[str, list[list[float]]] = {}

    def side(name: str, embed: Callable[[list[str]], list[list[float]]]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            answers[name] = [v for c in chunks for v in embed(c)]
            return len(texts) / (time.perf_counter() - start)
        return run

    sides = {"v1": side("v1", lambda c: _embed(ours, "/v1/embeddings", c)),
             "api": side("api", lambda c: _embed(ours, "/api/embed", c)),
             "peer": side("peer", lambda c: _embed(peer, "/v1/embeddings", c))}
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        from skyllama.convert.demo_assets import minilm_model_dir

        st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
        sides["st"] = side("st", lambda c: st.encode(c, batch_size=32, normalize_embeddings=True).tolist())
    except ImportError:
        print(f"{'':12} sentence-transformers not installed (the bench extra): its ratio is skipped")
    rates = _interleaved(repeats, sides)
    for name, label in (("v1", "/v1/embeddings"), ("api", "/api/embed")):
        row(W, f"{label} 16x32 texts/s", rates[name], rates["peer"], "peer /v1", "texts/s", ">= 1.1x",
            min_cosine_vs_peer=min_cosine(answers[name], answers["peer"]))
        if "st" in rates:
            row(W, f"{label} 16x32 texts/s", rates[name], rates["st"], "sentence-transformers", "texts/s",
                "report (was 0.59x)")
    print(f"{'':12} min cosine skyllama vs peer: {min_cosine(answers['v1'], answers['peer']):.6f}")


async def _chat_clients(url: str, n_clients: int, per_client: int) -> float:
    """``n_clients`` clients sending non-streamed /v1 chats back to back; aggregate completion tokens/s."""
    tokens = 0

    async def loop(client: httpx.AsyncClient, i: int) -> None:
        nonlocal tokens
        for j in range(per_client):
            r = await client.post("/v1/chat/completions", json={
                "model": SMOLLM2_NAME, "max_tokens": 32, "temperature": 0, "seed": 1,
                "messages": [{"role": "user", "content": f"Tell me a fact about the number {i * 100 + j}."}]})
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(base_url=url, timeout=600,
                                 limits=httpx.Limits(max_connections=n_clients + 2)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(loop(client, i) for i in range(n_clients)))
        return tokens / (time.perf_counter() - start)


def bench_concurrency(ours_url: str, peer_url: str, repeats: int) -> None:
    """4 and 8 concurrent chats, aggregate tokens/s (skyllama with OLLAMA_NUM_PARALLEL=8)."""
    for n in (4, 8):
        runs = _interleaved(repeats, {"ours": lambda n=n: asyncio.run(_chat_clients(ours_url, n, 2)),
                                      "peer": lambda n=n: asyncio.run(_chat_clients(peer_url, n, 2))})
        row(W, f"{n} concurrent chats, aggregate", runs["ours"], runs["peer"], "peer", "tokens/s", ">= 1.2x")


def run_peer(folder: Path, families: set[str], repeats: int) -> None:
    """The ``peer`` families of run_all.py; each starts only the servers it needs."""
    chat_gguf = gguf_path(folder, SMOLLM2_NAME)
    timeout = httpx.Timeout(600)
    if families & {"chat", "turns", "tools", "embed"}:
        with serve_in_subprocess(folder, context_length=CHAT_CTX) as url, httpx.Client(base_url=url,
                                                                                       timeout=timeout) as ours:
            if families & {"chat", "turns"}:
                with peer_server(chat_gguf, n_ctx=CHAT_CTX) as purl, httpx.Client(base_url=purl,
                                                                                 timeout=timeout) as peer:
                    if "chat" in families:
                        bench_chat(ours, peer, repeats)
                    if "turns" in families:
                        clients = {"ours": ours, "peer": peer}
                        if PROMPT_CACHE_SETTING in Settings.model_fields:
                            with serve_in_subprocess(folder, context_length=CHAT_CTX,
                                                     **{PROMPT_CACHE_SETTING: False}) as off_url, \
                                    httpx.Client(base_url=off_url, timeout=timeout) as off:
                                bench_turns({**clients, "no cache": off}, repeats)
                        else:
                            bench_turns(clients, repeats)
            if "tools" in families:
                with peer_server(chat_gguf, n_ctx=TOOLS_CTX) as purl, httpx.Client(base_url=purl,
                                                                                  timeout=timeout) as peer:
                    bench_tools(ours, peer, repeats)
            if "embed" in families:
                with peer_server(gguf_path(folder, EMBED_MODEL), n_ctx=512, embedding=True) as purl, \
                        httpx.Client(base_url=purl, timeout=timeout) as peer:
                    bench_embed(ours, peer, repeats)
    if "concurrency" in families:
        with serve_in_subprocess(folder, context_length=CHAT_CTX, num_parallel=8) as url, \
                peer_server(chat_gguf, n_ctx=CHAT_CTX) as purl:
            bench_concurrency(url, purl, repeats)
