"""Bounded load test: a fixed number of mixed requests (embed, generate, chat, tags, blob upload)
at a set concurrency for at most a set time against a server on 127.0.0.1, then a report of
throughput, p50/p99 latency and results by status, and a re-verification of every blob.

    .venv/bin/python tests/bench/load_test.py                       # own server, fake engine
    .venv/bin/python tests/bench/load_test.py --max-queue 2 --concurrency 16   # above the queue limit
    .venv/bin/python tests/bench/load_test.py --engine real         # the demo models (slow on 2 cores)

Targets: zero 5xx below the queue limit, 503 only above it, no dropped connection, and no lost or
corrupted blob. ``tests/api/test_overload.py`` runs a bounded variant in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ggufs import write_tiny_gguf  # noqa: E402
from serving import clone_models, run_server  # noqa: E402

MIX = [("generate", 3), ("chat", 3), ("embed", 2), ("tags", 2), ("upload", 1)]


def request_for(kind: str, model: str, embed_model: str) -> tuple[str, str, dict[str, Any]]:
    if kind == "generate":
        return "POST", "/api/generate", {"json": {"model": model, "prompt": "Say hi", "stream": False,
                                                  "options": {"num_predict": 8}}}
    if kind == "chat":
        return "POST", "/api/chat", {"json": {"model": model, "stream": False, "options": {"num_predict": 8},
                                              "messages": [{"role": "user", "content": "hello"}]}}
    if kind == "embed":
        return "POST", "/api/embed", {"json": {"model": embed_model, "input": ["a sentence", "another one"]}}
    if kind == "tags":
        return "GET", "/api/tags", {}
    data = os.urandom(random.randint(1, 256) << 10)
    return "POST", f"/api/blobs/sha256:{hashlib.sha256(data).hexdigest()}", {"content": data}


async def drive(url: str, total: int, concurrency: int, duration: float, model: str,
                embed_model: str) -> dict[str, Any]:
    kinds = [k for k, w in MIX for _ in range(w)]
    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    uploaded: list[str] = []
    issued = 0
    deadline = time.monotonic() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < total and time.monotonic() < deadline:
            issued += 1
            kind = random.choice(kinds)
            method, path, kwargs = request_for(kind, model, embed_model)
            started = time.perf_counter()
            try:
                r = await client.request(method, path, **kwargs)
                status = str(r.status_code)
                if kind == "upload" and r.status_code in (200, 201):
                    uploaded.append(path.rsplit(":", 1)[1])
            except httpx.HTTPError as e:
                status = type(e).__name__
            latencies[kind].append(time.perf_counter() - started)
            statuses[f"{kind} {status}"] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)) as c:
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    every = sorted(x for xs in latencies.values() for x in xs)

    def pct(xs: list[float], p: float) -> float:
        return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else 0.0

    return {"requests": len(every), "seconds": round(elapsed, 2), "throughput_rps": round(len(every) / elapsed, 1),
            "p50_ms": pct(every, 0.50), "p99_ms": pct(every, 0.99),
            "by_kind_p50_ms": {k: round(1000 * statistics.median(v), 1) for k, v in sorted(latencies.items())},
            "statuses": dict(sorted(statuses.items())),
            "5xx": sum(n for k, n in statuses.items() if k.split()[-1].startswith("5")),
            "503": sum(n for k, n in statuses.items() if k.endswith(" 503")),
            "dropped": sum(n for k, n in statuses.items() if not k.split()[-1].isdigit()),  # ReadError, ...
            "uploaded": uploaded}


def verify_blobs(models: Path, uploaded: list[str]) -> dict[str, int]:
    """Every committed blob hashes to its name; every acknowledged upload is there."""
    bad = 0
    names = {p.name for p in (models / "blobs").iterdir() if p.name.startswith("sha256-")}
    for name in names:
        h = hashlib.sha256()
        with open(models / "blobs" / name, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        bad += h.hexdigest() != name[7:]
    lost = sum(1 for hex_ in uploaded if f"sha256-{hex_}" not in names)
    partial = sum(1 for p in (models / "blobs").iterdir() if p.name.startswith(".partial"))
    return {"blobs": len(names), "corrupted": bad, "lost": lost, "partial_left": partial}


def prepare_fake(models: Path) -> tuple[str, str]:
    """A tiny GGUF model (created through the API's create path) for the fake engine."""
    from skyllama.composition import build_runtime
    from skyllama.settings import Settings

    settings = Settings.from_env({}, models=models, state_db=models / ".skyllama" / "state.db")
    runtime = build_runtime(settings, inference=False)
    digest = runtime.blobs.put_file(write_tiny_gguf(models / "tiny.gguf"))
    models.joinpath("tiny.gguf").unlink()
    for name in ("tiny", "tiny-embed"):
        list(runtime.creator.run(runtime.creator.plan({
            "model": name, "files": {"t.gguf": str(digest)}, "template": "{{ .Prompt }}"}, None)))
    runtime.close()
    return "tiny", "tiny-embed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--max-queue", type=int, default=512)
    parser.add_argument("--num-parallel", type=int, default=2)
    parser.add_argument("--engine", choices=["fake", "real"], default="fake")
    parser.add_argument("--token-delay", type=float, default=0.002, help="fake engine seconds per token")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        if args.engine == "real":
            from skyllama.composition import build_runtime
            from skyllama.demo import install_demo_models
            from skyllama.settings import Settings

            cache = Path(tmp) / "demo"
            runtime = build_runtime(Settings.from_env({}, models=cache, state_db=cache / "s.db"), inference=False)
            install_demo_models(runtime)
            runtime.close()
            clone_models(cache, models)
            model, embed_model = "smollm2:135m", "all-minilm"
        else:
            model, embed_model = prepare_fake(models)
        engine = None
        if args.engine == "fake":
            from skyllama.engine.fake import FakeEngine

            engine = FakeEngine(token_delay=args.token_delay)
            for _ in range(args.requests):
                engine.enqueue(["Hi", " there", "!", " How", " can", " I", " help", "?"])
        with run_server(models, engine=engine, max_queue=args.max_queue, num_parallel=args.num_parallel) as server:
            report = asyncio.run(drive(server.url, args.requests, args.concurrency, args.duration, model,
                                       embed_model))
        report["verify"] = verify_blobs(models, report.pop("uploaded"))
    report["config"] = vars(args)
    print(json.dumps(report, indent=2))
    below_limit = args.concurrency <= args.max_queue + args.num_parallel
    ok = report["verify"]["corrupted"] == report["verify"]["lost"] == report["dropped"] == 0 and (
        report["5xx"] == 0 if below_limit else report["5xx"] == report["503"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
