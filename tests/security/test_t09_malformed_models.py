"""T-09 malformed model files: every crafted GGUF and safetensors header of the corpus
(``corpus/crafted.py``) is refused by the pure-Python readers with ``InvalidModelFile``, within a
time and memory bound, and through ``/api/create`` with a 400 before any native code (llama.cpp,
the converter's numpy reads) sees it."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus.crafted import GGUF_CASES, SAFETENSORS_CASES
from fastapi import FastAPI
from fastapi.testclient import TestClient

from skyllama.composition import build_runtime
from skyllama.convert.safetensors_reader import SafetensorsFile
from skyllama.engine.base import LoadSpec
from skyllama.errors import InvalidModelFile
from skyllama.gguf_info import read_gguf
from skyllama.http.app import create_app
from skyllama.settings import Settings

TIME_BOUND = 1.0
MEMORY_BOUND = 16 << 20
CONFIG = b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}'


def bounded(fn: object) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidModelFile):
            fn()  # type: ignore[operator]
    finally:
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < TIME_BOUND and peak < MEMORY_BOUND, (elapsed, peak)


@pytest.mark.parametrize("case", sorted(GGUF_CASES))
def test_crafted_gguf_is_refused_in_bounded_time_and_memory(case: str, tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(GGUF_CASES[case]())
    bounded(lambda: read_gguf(path))


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_crafted_safetensors_is_refused_in_bounded_time_and_memory(case: str, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(SAFETENSORS_CASES[case]())
    bounded(lambda: SafetensorsFile(path, "model.safetensors"))


class NativeEngine:
    """The server's only way to native code (llama.cpp runs in runner processes it loads into)."""

    batching = True

    def load(self, spec: LoadSpec) -> None:
        raise AssertionError("native code reached with a crafted file")

    def load_batched(self, spec: LoadSpec, n_seq: int) -> None:
        raise AssertionError("native code reached with a crafted file")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, engine=NativeEngine())  # type: ignore[arg-type]
    yield create_app(runtime)
    runtime.close()


def upload(client: TestClient, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    return digest


@pytest.mark.parametrize("case", sorted(GGUF_CASES))
def test_create_from_crafted_gguf_is_400_and_writes_nothing(app: FastAPI, case: str) -> None:
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        digest = upload(client, GGUF_CASES[case]())
        r = client.post("/api/create", json={"model": "bad", "files": {"model.gguf": digest}, "stream": False})
        assert r.status_code == 400, r.text
        assert client.get("/api/tags").json()["models"] == []


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_create_from_crafted_safetensors_is_400(app: FastAPI, case: str) -> None:
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        files = {"model.safetensors": upload(client, SAFETENSORS_CASES[case]() or b"\0"),
                 "config.json": upload(client, CONFIG)}
        r = client.post("/api/create", json={"model": "bad", "files": files, "stream": False})
        assert r.status_code == 400, r.text
        assert client.get("/api/tags").json()["models"] == []
