"""The ``/v2/`` registry protocol: status codes, headers, ranges, chunked uploads, mounts,
manifests, and Docker error bodies (T-04: a wrong digest commits nothing)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fake_registry import digest_of, manifest_for
from skyllama.composition import build_runtime
from skyllama.http.app import create_app
from skyllama.ports import Clock
from skyllama.settings import Settings


class FakeClock(Clock):
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "models", state_db=tmp_path / "state.db",
                                 host="127.0.0.1:11434", registry_upload_ttl=60)
    runtime = build_runtime(settings, clock=clock, inference=False)
    yield create_app(runtime)
    runtime.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        yield c


def blob_files(app: FastAPI) -> list[str]:
    return sorted(p.name for p in (app.state.runtime.settings.models / "blobs").iterdir())


def upload(client: TestClient, data: bytes, repo: str = "ns/m", chunks: int = 3) -> str:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    assert r.headers["Docker-Upload-UUID"] and r.headers["Location"].startswith("http://127.0.0.1:11434/v2/")
    location = r.headers["Location"]
    step = max(1, -(-len(data) // chunks))
    for start in range(0, len(data), step):
        part = data[start:start + step]
        r = client.patch(location, content=part, headers={"Content-Range": f"{start}-{start + len(part) - 1}"})
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{start + len(part) - 1}"
        location = r.headers["Location"]
    digest = digest_of(data)
    r = client.put(location, params={"digest": digest})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"].endswith(f"/v2/{repo}/blobs/{digest}")
    return digest


def test_base(client: TestClient) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_chunked_upload_then_ranged_reads(client: TestClient) -> None:
    data = bytes(range(256)) * 40
    digest = upload(client, data)
    r = client.head(f"/v2/ns/m/blobs/{digest}")
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(data))
    assert r.headers["Docker-Content-Digest"] == digest and r.headers["Accept-Ranges"] == "bytes"
    assert client.get(f"/v2/ns/m/blobs/{digest}").content == data
    r = client.get(f"/v2/ns/m/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = client.get(f"/v2/ns/m/blobs/{digest}", headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    r = client.get(f"/v2/ns/m/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = client.get(f"/v2/ns/m/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"


def test_wrong_digest_on_put_commits_nothing(app: FastAPI, client: TestClient) -> None:
    before = blob_files(app)
    location = client.post("/v2/ns/m/blobs/uploads/").headers["Location"]
    assert client.patch(location, content=b"hello world").status_code == 202
    wrong = digest_of(b"something else")
    r = client.put(location, params={"digest": wrong})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert blob_files(app) == before
    assert client.head(f"/v2/ns/m/blobs/{digest_of(b'hello world')}").status_code == 404
    assert client.put(location, params={"digest": digest_of(b"hello world")}).status_code == 404  # session gone


def test_bad_digests_are_refused(client: TestClient) -> None:
    for bad in ("sha256:../../x", "sha256:" + "A" * 64, "sha512:" + "0" * 64, "sha256-short"):
        r = client.get(f"/v2/ns/m/blobs/{bad}")
        assert r.status_code in (400, 404), bad
    location = client.post("/v2/ns/m/blobs/uploads/").headers["Location"]
    r = client.put(location, params={"digest": "sha256:../../etc"}, content=b"x")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_monolithic_upload_and_mount(client: TestClient) -> None:
    data = b"monolithic"
    r = client.post("/v2/ns/m/blobs/uploads/", params={"digest": digest_of(data)}, content=data)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest_of(data)
    r = client.post("/v2/other/x/blobs/uploads/", params={"mount": digest_of(data), "from": "ns/m"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest_of(data)
    r = client.post("/v2/other/x/blobs/uploads/", params={"mount": digest_of(b"absent"), "from": "ns/m"})
    assert r.status_code == 202 and r.headers["Location"]


def test_patch_out_of_order_and_unknown_session(client: TestClient) -> None:
    location = client.post("/v2/ns/m/blobs/uploads/").headers["Location"]
    assert client.patch(location, content=b"abc", headers={"Content-Range": "0-2"}).status_code == 202
    r = client.patch(location, content=b"def", headers={"Content-Range": "10-12"})
    assert r.status_code == 416
    r = client.get(location)
    assert r.status_code == 204 and r.headers["Range"] == "0-2"
    r = client.patch("/v2/ns/m/blobs/uploads/not-a-session", content=b"x")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404


def test_abandoned_sessions_expire(app: FastAPI, client: TestClient, clock: FakeClock) -> None:
    location = client.post("/v2/ns/m/blobs/uploads/").headers["Location"]
    assert client.patch(location, content=b"partial data").status_code == 202
    partials = [n for n in blob_files(app) if n.startswith(".partial")]
    assert partials
    clock.t += 61
    assert client.get(location).status_code == 404
    assert not [n for n in blob_files(app) if n.startswith(".partial")]


def test_manifests(client: TestClient) -> None:
    config, layer = b'{"model_format":"gguf"}', b"GGUF weights"
    manifest = manifest_for(config, [layer])
    r = client.put("/v2/ns/m/manifests/v1", content=manifest)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    upload(client, config, chunks=1)
    upload(client, layer, chunks=2)
    r = client.put("/v2/ns/m/manifests/v1", content=b"not json")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    r = client.put("/v2/ns/m/manifests/v1", content=manifest)
    assert r.status_code == 201, r.text
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert r.headers["Docker-Content-Digest"] == digest
    r = client.get("/v2/ns/m/manifests/v1", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.status_code == 200 and r.content == manifest
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert client.head("/v2/ns/m/manifests/v1").status_code == 200
    assert client.get(f"/v2/ns/m/manifests/{digest}").content == manifest
    assert client.get("/v2/ns/m/tags/list").json() == {"name": "ns/m", "tags": ["v1"]}
    r = client.get("/v2/ns/m/manifests/v2")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert client.head("/v2/ns/m/manifests/v2").status_code == 404
    # the pushed model is a local model under the serve host (registry.ollama.ai): ns/m:v1
    assert "ns/m:v1" in [m["name"] for m in client.get("/api/tags").json()["models"]]


def test_unknown_blob_and_repo_shapes(client: TestClient) -> None:
    r = client.get(f"/v2/ns/m/blobs/{digest_of(b'nothing')}")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert client.get("/v2/a/b/c/manifests/latest").status_code == 404
    assert client.get("/v2/ns/m/manifests/..%2f..%2fx").status_code in (400, 404)
