"""T-29 corrupt manifest tolerance: one unreadable or corrupt manifest (bad JSON, a bad digest, a
file at the wrong depth, a bad name) does not break listing, show or delete of the others, but does
block garbage collection and pruning (their references are unknown)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.digests import Digest
from skyllama.http.app import create_app
from skyllama.services.models.gc import GCRefused, collect_garbage
from skyllama.settings import Settings

BAD = {
    "bad-json": ("registry.ollama.ai/library/broken/v1", b"{not json"),
    "bad-digest": ("registry.ollama.ai/library/broken/v2",
                   b'{"schemaVersion":2,"config":{"digest":"sha256:../../x","size":1},"layers":[]}'),
    "wrong-depth": ("registry.ollama.ai/stray", b"{}"),
    "bad-name": ("registry.ollama.ai/library/-bad!/v1", b"{}"),
    "binary": ("registry.ollama.ai/library/bin/v1", bytes(range(256))),
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, inference=False)
    yield create_app(runtime)
    runtime.close()


@pytest.mark.parametrize("case", sorted(BAD))
def test_one_bad_manifest_breaks_nothing_else_but_blocks_gc(app: FastAPI, tmp_path: Path, case: str) -> None:
    svc = app.state.runtime
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        data = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert c.post(f"/api/blobs/{digest}", content=data).status_code == 201
        for name in ("good", "other"):
            assert c.post("/api/create", json={"model": name, "files": {"t.gguf": digest}, "system": name,
                                               "stream": False}).status_code == 200
        rel, content = BAD[case]
        path = svc.settings.models / "manifests" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        names = {m["name"] for m in c.get("/api/tags").json()["models"]}
        assert {"good:latest", "other:latest"} <= names
        assert c.post("/api/show", json={"model": "good"}).status_code == 200
        orphan = svc.blobs.put_bytes(b"unreferenced")
        with pytest.raises(GCRefused):
            collect_garbage(svc.blobs, svc.manifests, svc.state, grace_seconds=0)
        assert c.request("DELETE", "/api/delete", json={"model": "other"}).status_code == 200
        assert c.post("/api/show", json={"model": "good"}).status_code == 200
        assert svc.blobs.exists(orphan)
        assert svc.blobs.exists(Digest.of_bytes(b"other"))  # not pruned while a manifest is unreadable
