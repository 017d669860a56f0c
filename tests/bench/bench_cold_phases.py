"""Where a Lambda cold start spends its time before the first token, phase by phase.

Run: ``.venv/bin/python tests/bench/bench_cold_phases.py [--repeats 3]``. Same setup as
``bench_lambda_cold.py`` (moto's server, the GGUF already in ``SKYLLAMA_CACHE_DIR``); each run is a
new process that times third-party imports, skyllama's imports, the function's init, ``import
llama_cpp`` and the first buffered request (``num_predict`` 1), next to a bare llama-cpp-python
process that times its import, load and first token.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import gguf_path
from bench_lambda_cold import GEN_OPTIONS, PROMPT, ROOT, SMOLLM2_NAME, TASK_ROOT, warm_disk_lambda
from lambda_support import http_event

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import fastapi, pydantic_settings, boto3, aws_lambda_powertools, mangum
t1 = time.perf_counter()
import skyllama.http.app, skyllama.adapters.aws.factory
t2 = time.perf_counter()
import app
t3 = time.perf_counter()
import llama_cpp
t4 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from lambda_support import LambdaContext
response = app.handler(json.loads(sys.argv[2]), LambdaContext())
t5 = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"third-party imports": t1 - t0, "skyllama imports": t2 - t1, "function init": t3 - t2,
                  "import llama_cpp": t4 - t3, "first request (manifest, load, 1 token)": t5 - t4}))
"""

BARE = r"""
import json, sys, time
t0 = time.perf_counter()
import llama_cpp
t1 = time.perf_counter()
llm = llama_cpp.Llama(sys.argv[1], n_ctx=2048, n_batch=512, n_ubatch=512, verbose=False)
t2 = time.perf_counter()
next(iter(llm.generate(llm.tokenize(sys.argv[2].encode(), add_bos=False, special=True), temp=0.0)))
t3 = time.perf_counter()
print(json.dumps({"import llama_cpp": t1 - t0, "load": t2 - t1, "first token": t3 - t2}))
"""


def last_json(stdout: str) -> dict[str, float]:
    """The phase line: the process also prints Powertools' metric documents."""
    lines = [line for line in stdout.splitlines() if line.startswith("{") and '"_aws"' not in line]
    phases: dict[str, float] = json.loads(lines[-1])
    return phases


def measure(repeats: int) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """``repeats`` cold starts of the inference function and of bare llama-cpp-python, interleaved."""
    event = http_event("http-api-v2", "POST", "/api/generate", body={
        "model": SMOLLM2_NAME, "prompt": PROMPT, "raw": True, "stream": False,
        "options": {**GEN_OPTIONS, "num_predict": 1}})
    ours: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    with warm_disk_lambda() as (folder, env):
        for _ in range(repeats):
            run = subprocess.run([sys.executable, "-c", PHASES, str(ROOT / "tests" / "lambda"), json.dumps(event)],
                                 cwd=TASK_ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            ours.append(last_json(run.stdout))
            run = subprocess.run([sys.executable, "-c", BARE, gguf_path(folder, SMOLLM2_NAME), PROMPT],
                                 capture_output=True, text=True, check=True)
            bare.append(last_json(run.stdout))
    return ours, bare


def print_phases(ours: list[dict[str, float]], bare: list[dict[str, float]]) -> None:
    """The median of each phase, and of the totals, in ms."""
    for title, runs in (("skyllama inference function", ours), ("bare llama-cpp-python", bare)):
        print(title)
        for phase in runs[0]:
            print(f"  {phase:42} {statistics.median(r[phase] for r in runs) * 1e3:7.0f} ms")
        print(f"  {'total':42} {statistics.median(sum(r.values()) for r in runs) * 1e3:7.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_phases(*measure(args.repeats))


if __name__ == "__main__":
    main()
