"""Tuning sweep: llama.cpp load parameters for embedding and generation, one table per model kind.

Runs the engine in-process (no HTTP) over every value of one knob at a time, the others at their
defaults, A/B interleaved over ``--repeats`` rounds so drift on a shared machine hits every row alike.

    .venv/bin/python tests/bench/sweep.py --kind embed --repeats 3
    .venv/bin/python tests/bench/sweep.py --kind generate --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import demo_folder, gguf_path
from run_all import EMBED_MODEL, short_texts

from skyllama.demo import SMOLLM2_NAME
from skyllama.engine import llama as engine
from skyllama.engine.base import LoadSpec, Sampling
from skyllama.engine.llama import LlamaModel, physical_cores

Variant = tuple[str, dict[str, Any], dict[str, Any]]  # label, LoadSpec fields, engine module constants


def variants(kind: str) -> list[Variant]:
    threads = sorted({1, physical_cores(), max(1, (physical_cores() * 3) // 2)})
    out: list[Variant] = [("default", {}, {})]
    out += [(f"threads={t}", {"n_threads": t}, {}) for t in threads]
    out += [("flash_attn", {"flash_attn": True}, {}), ("no mmap", {"use_mmap": False}, {})]
    if kind == "embed":
        out += [(f"pack={p}", {}, {"EMBED_PACK_TOKENS": p}) for p in (16, 32, 64, 128, 256, 512)]
    else:
        out += [(f"n_batch={b}", {"n_batch": b}, {}) for b in (64, 128, 256, 512)]
        out += [("kv q8_0 (flash)", {"flash_attn": True, "kv_cache_type": "q8_0"}, {})]
    return out


def embed_case(path: str, fields: dict[str, Any]) -> tuple[LlamaModel, Callable[[], float]]:
    model = LlamaModel(LoadSpec(path=path, n_ctx=512, n_batch=512, embedding=True, **fields))
    texts = short_texts()

    def run() -> float:
        start = time.perf_counter()
        for i in range(0, len(texts), 32):
            model.embed(texts[i : i + 32], normalize=True)
        return len(texts) / (time.perf_counter() - start)

    return model, run


def generate_case(path: str, fields: dict[str, Any], tokens: int) -> tuple[LlamaModel, Callable[[], float]]:
    spec = {"n_batch": 512, **fields}
    model = LlamaModel(LoadSpec(path=path, n_ctx=2048, **spec))
    prompt = model.tokenize(
        "<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n",
        add_special=True,
    )

    def run() -> float:
        start = time.perf_counter()
        sampling = Sampling(temperature=0, seed=1, num_predict=tokens)
        n = sum(1 for piece in model.generate(prompt, sampling) if isinstance(piece, str))
        return n / (time.perf_counter() - start)

    return model, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("embed", "generate"), default="embed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    folder = demo_folder()
    path = gguf_path(folder, EMBED_MODEL if args.kind == "embed" else SMOLLM2_NAME)
    results: dict[str, list[float]] = {}
    rows = variants(args.kind)
    for _ in range(args.repeats):
        for label, fields, constants in rows:
            saved = {k: getattr(engine, k) for k in constants}
            for k, v in constants.items():
                setattr(engine, k, v)
            try:
                model, run = (
                    embed_case(path, fields)
                    if args.kind == "embed"
                    else generate_case(path, fields, args.tokens)
                )
                run()  # warm-up
                results.setdefault(label, []).append(run())
                model.close()
            finally:
                for k, v in saved.items():
                    setattr(engine, k, v)
    unit = "texts/s" if args.kind == "embed" else "tokens/s"
    base = statistics.median(results["default"])
    print(f"{args.kind} sweep ({physical_cores()} threads by default), median [min..max] over {args.repeats}")
    for label, values in results.items():
        m = statistics.median(values)
        print(f"  {label:<18} {m:9.1f} [{min(values):.1f}..{max(values):.1f}] {unit}  {m / base:.3f}x")


if __name__ == "__main__":
    main()
