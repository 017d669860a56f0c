"""Lambda cold start: process start to the first streamed token of the inference function, model cached.

Run: ``.venv/bin/python tests/bench/bench_lambda_cold.py [--repeats 5]``. Each run starts
``functions/inference/stream.py`` (the streaming custom runtime; its init imports ``app.py`` as the
buffered function does) in a new process against a Runtime API on 127.0.0.1 that already holds a
Function URL ``/api/generate`` event (stream, ``num_predict`` 1), with S3 and DynamoDB on moto's server
and the GGUF already in ``SKYLLAMA_CACHE_DIR`` (``/tmp`` of a warm-disk environment). The figure is the
time from ``Popen`` to the arrival of the first NDJSON token line at the Runtime API; the baseline is
the same bare llama-cpp-python load and first token as ``run_all.py``'s cold workload.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import demo_folder, gguf_path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lambda"))

from fake_runtime_api import FakeRuntimeApi  # noqa: E402
from lambda_support import free_port, http_event  # noqa: E402
from run_all import GEN_OPTIONS, PROMPT, cold_bare  # noqa: E402

from skyllama.demo import SMOLLM2_NAME  # noqa: E402

TASK_ROOT = ROOT / "functions" / "inference"


def fake_aws(folder: Path) -> tuple[object, dict[str, str]]:
    """moto's server with the demo models in its S3; the environment a function gets."""
    from moto.server import ThreadedMotoServer

    from skyllama.adapters.aws.s3_blobs import S3BlobStore
    from skyllama.adapters.aws.s3_manifests import S3ManifestStore
    from skyllama.adapters.aws.tables import bootstrap
    from skyllama.adapters.local.blobs import LocalBlobStore
    from skyllama.adapters.local.manifests import LocalManifestStore

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    os.environ.update(creds)
    res = bootstrap(bucket="bench-models", table="bench-state", queue="bench-jobs", endpoint_url=endpoint)
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    blobs, manifests = S3BlobStore(res.bucket, client=s3), S3ManifestStore(res.bucket, client=s3)
    local_blobs, local_manifests = LocalBlobStore(folder), LocalManifestStore(folder)
    for digest in local_blobs.list():
        blobs.put_file(local_blobs.local_path(digest), digest)
    for stored in local_manifests.list():
        manifests.put(stored.name, stored.data)
    env = {
        **creds,
        "AWS_ENDPOINT_URL": endpoint,
        "SKYLLAMA_BACKEND": "aws",
        "SKYLLAMA_BUCKET": res.bucket,
        "SKYLLAMA_TABLE": res.table,
        "SKYLLAMA_QUEUE_URL": res.queue_url,
        "SKYLLAMA_AUTH": "off",
        "POWERTOOLS_SERVICE_NAME": "skyllama",
        "POWERTOOLS_METRICS_NAMESPACE": "skyllama",
        "AWS_LAMBDA_FUNCTION_NAME": "skyllama-stream",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240",
        "LAMBDA_TASK_ROOT": str(TASK_ROOT),
        "PYTHONPATH": f"{TASK_ROOT}{os.pathsep}{ROOT / 'layers' / 'core'}",
    }
    return server, env


def cold_lambda(env: dict[str, str]) -> float:
    event = http_event(
        "function-url",
        "POST",
        "/api/generate",
        body={
            "model": SMOLLM2_NAME,
            "prompt": PROMPT,
            "raw": True,
            "options": {**GEN_OPTIONS, "num_predict": 1},
        },
    )
    with FakeRuntimeApi() as api:
        outcome = api.invoke(event)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(TASK_ROOT / "stream.py")],
            cwd=TASK_ROOT,
            env={**os.environ, **env, "AWS_LAMBDA_RUNTIME_API": api.address},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = start + 300
            while time.monotonic() < deadline:
                seen = b""
                for at, data in list(outcome.chunks):
                    seen += data
                    if b'"response":' in seen:
                        return (at - start) * 1e3
                if outcome.done.is_set():
                    raise RuntimeError(f"no token in the response: {outcome.body[:300]!r}")
                time.sleep(0.002)
            raise RuntimeError("no first token in 300 s")
        finally:
            proc.terminate()
            proc.wait(30)


@contextlib.contextmanager
def warm_disk_lambda() -> Iterator[tuple[Path, dict[str, str]]]:
    """The demo models folder and a function environment whose cache already holds the GGUF."""
    folder = demo_folder()
    server, env = fake_aws(folder)
    env["SKYLLAMA_CACHE_DIR"] = tempfile.mkdtemp(prefix="skyllama-lambda-tmp-")
    try:
        cold_lambda(env)  # fills the cache from S3: later runs find the model on disk
        yield folder, env
    finally:
        server.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with warm_disk_lambda() as (folder, env):
        path = gguf_path(folder, SMOLLM2_NAME)
        ours, bare = [], []
        for _ in range(args.repeats):  # interleaved, so background load hits both alike
            ours.append(cold_lambda(env))
            bare.append(cold_bare(path))
    o, b = statistics.median(ours), statistics.median(bare)
    print(
        f"Lambda cold start to first token: {o:.0f} ms [{min(ours):.0f}..{max(ours):.0f}]; bare llama-cpp-python "
        f"{b:.0f} ms [{min(bare):.0f}..{max(bare):.0f}]; ratio {o / b:.2f}x ({os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
