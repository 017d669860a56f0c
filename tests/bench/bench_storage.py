"""Storage against a plain file copy: blob upload (``POST /api/blobs``), blob download (``GET
/v2/.../blobs``) and a pull from a second instance on 127.0.0.1 (run_all.py's ``storage`` family)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _common import row, serve_in_subprocess

from skyllama.composition import build_runtime
from skyllama.demo import SMOLLM2_NAME
from skyllama.settings import Settings


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def verified_copy(source: Path, dest: Path) -> None:
    """What a verified, durable blob commit must do at least: read, sha256, write, fsync."""
    h = hashlib.sha256()
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(4 << 20):
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def bench_storage(folder: Path, repeats: int) -> None:
    runtime = build_runtime(Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db"),
                            inference=False)
    model = runtime.catalog.get(SMOLLM2_NAME, None)
    layer = model.model_layer
    assert layer is not None
    digest = f"sha256:{layer.digest.hex}"
    blob = Path(runtime.catalog.model_path(model))
    runtime.close()
    size_mb = blob.stat().st_size / 1e6
    scratch = Path(tempfile.mkdtemp(prefix="skyllama-bench-storage-"))
    copy_s, verified_s, up_s, down_s, pull_s = [], [], [], [], []
    empty = scratch / "b"
    empty.mkdir()
    # Each server in its own process (as in production): client, source and puller share no GIL.
    with serve_in_subprocess(folder, registry_allow_loopback=True) as a_url, \
            serve_in_subprocess(empty, registry_allow_loopback=True) as b_url, \
            httpx.Client(timeout=600) as client:
        name = f"{a_url.removeprefix('http://')}/library/smollm2:135m"
        for _ in range(repeats):
            copy_s.append(timed(lambda: shutil.copyfile(blob, scratch / "copy"))[0])
            (scratch / "copy").unlink()
            verified_s.append(timed(lambda: verified_copy(blob, scratch / "copy"))[0])
            (scratch / "copy").unlink()
            for partial in (empty / "blobs").glob(f"sha256-{layer.digest.hex}*"):
                partial.unlink()

            def upload() -> None:
                with blob.open("rb") as f:
                    client.post(f"{b_url}/api/blobs/{digest}", content=iter(lambda: f.read(4 << 20), b"")
                                ).raise_for_status()
            up_s.append(timed(upload)[0])

            def download() -> None:
                with client.stream("GET", f"{a_url}/v2/library/smollm2/blobs/{digest}") as r:
                    r.raise_for_status()
                    for _ in r.iter_raw():
                        pass
            down_s.append(timed(download)[0])
            client.request("DELETE", f"{b_url}/api/delete", json={"model": "pulled:latest"})
            for stale in (empty / "blobs").glob(f"sha256-{layer.digest.hex}*"):
                stale.unlink()

            def pull() -> None:
                r = client.post(f"{b_url}/api/pull", json={"model": name, "insecure": True, "stream": False})
                r.raise_for_status()
            pull_s.append(timed(pull)[0])
            client.request("DELETE", f"{b_url}/api/delete", json={"model": name})
    shutil.rmtree(scratch, ignore_errors=True)
    copy = [size_mb / s for s in copy_s]
    verified = [size_mb / s for s in verified_s]
    row("storage", f"sha256+write+fsync ({size_mb:.0f} MB)", verified, copy, "file copy", "MB/s", "bound")
    for label, values in (("blob upload", up_s), ("blob download", down_s), ("pull from 127.0.0.1", pull_s)):
        mbs = [size_mb / s for s in values]
        row("storage", f"{label} ({size_mb:.0f} MB)", mbs, copy, "file copy", "MB/s", ">= 0.8x")
        if label != "blob download":  # these verify and commit durably: their floor is the verified copy
            row("storage", f"{label} ({size_mb:.0f} MB)", mbs, verified, "sha256+write+fsync", "MB/s", ">= 0.8x")
