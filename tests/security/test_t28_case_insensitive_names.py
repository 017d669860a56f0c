"""T-28 case-insensitive names: ``Foo:Latest`` and ``foo:latest`` are one model (show, tags, copy,
create over it, delete), on the local folder and on S3 under moto; the first spelling is kept."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from faults import aws_stores, moto_aws

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime, build_stores
from skyllama.http.app import create_app
from skyllama.ports import Clock
from skyllama.settings import Settings


@pytest.fixture(params=["local", "aws"])
def client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    if request.param == "local":
        runtime = build_runtime(settings, inference=False)
        with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
            yield c
        runtime.close()
        return
    with moto_aws(monkeypatch):
        _s3, blobs, manifests, _state = aws_stores(tmp_path / "cache")
        local = build_stores(settings, Clock())  # the state and parts stay local, as the settings say
        runtime = build_runtime(settings, stores=replace(local, blobs=blobs, manifests=manifests), inference=False)
        with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
            yield c
        runtime.close()


def test_names_differing_only_in_case_are_one_model(client: TestClient, tmp_path: Path) -> None:
    data = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201

    def create(name: str, system: str) -> None:
        r = client.post("/api/create", json={"model": name, "files": {"t.gguf": digest}, "system": system,
                                             "stream": False})
        assert r.status_code == 200, r.text

    create("Foo:Latest", "one")
    create("foo:latest", "two")  # replaces, never a second model
    create("FOO:LATEST", "three")
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert names == ["Foo:Latest"]
    for spelling in ("foo", "FOO:latest", "registry.ollama.ai/library/foo:LATEST"):
        r = client.post("/api/show", json={"model": spelling})
        assert r.status_code == 200 and r.json()["system"] == "three"
    assert client.post("/api/copy", json={"source": "foo", "destination": "fOO:lAtEsT"}).status_code == 200
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["Foo:Latest"]
    assert client.request("DELETE", "/api/delete", json={"model": "FOO"}).status_code == 200
    assert client.get("/api/tags").json()["models"] == []
