"""T-12 no information disclosure: internal failures (a store raising ``OSError`` with a server
path, a botocore ``ClientError`` naming the bucket and key, a plain bug with a stack) answer with
bodies that carry no server path, bucket or key name, or stack trace, streamed or not; and the
``path``/``modelfile`` fields of ``/api/create`` can't read the server's files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from faults import (
    BUCKET,
    PREFIX,
    FaultyBlobStore,
    FaultyManifestStore,
    FaultyStateStore,
    FaultyWorld,
    aws_stores,
    moto_aws,
    throttle,
)

from ggufs import write_tiny_gguf
from skyllama.adapters.local.blobs import LocalBlobStore
from skyllama.adapters.local.manifests import LocalManifestStore
from skyllama.adapters.local.parts import LocalPartStore
from skyllama.adapters.local.sqlite_state import SqliteStateStore
from skyllama.composition import Runtime, Stores, build_runtime
from skyllama.errors import StoreError
from skyllama.http.app import create_app
from skyllama.settings import Settings

SECRET_PATH = "/srv/skyllama-secret/models/blobs"
FORBIDDEN = [SECRET_PATH, "skyllama-secret", "Traceback", 'File "', ".py", "sha256-", BUCKET, "arn:aws"]


def exceptions(tmp: Path) -> dict[str, BaseException]:
    err = {"Error": {"Code": "AccessDenied", "Message": f"denied on {BUCKET}/{PREFIX}blobs/x arn:aws:s3:::{BUCKET}"}}
    return {"oserror": OSError(28, "No space left on device", f"{SECRET_PATH}/sha256-abc"),
            "permission": PermissionError(13, "Permission denied", str(tmp / "models")),
            "clienterror": ClientError(err, "PutObject"),
            "bug": KeyError(f"{SECRET_PATH} Traceback (most recent call last)")}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime over a local folder whose three stores are fault-injecting wrappers."""
    models = tmp_path / "models"
    settings = Settings.from_env({}, models=models, state_db=models / ".skyllama" / "state.db")
    state = FaultyStateStore(SqliteStateStore(settings.state_path))
    stores = Stores(FaultyBlobStore(LocalBlobStore(models)), FaultyManifestStore(LocalManifestStore(models)), state,
                    LocalPartStore(models / ".skyllama" / "partial"), closers=(state.inner.close,))
    rt = build_runtime(settings, stores=stores, inference=False)
    yield rt
    rt.close()


@pytest.fixture
def world(runtime: Runtime) -> Iterator[FaultyWorld]:
    stores = runtime.stores
    w = FaultyWorld(runtime, stores.blobs, stores.manifests, stores.state)  # type: ignore[arg-type]
    yield w
    w.clear()


@pytest.fixture
def client(runtime: Runtime, world: FaultyWorld) -> Iterator[TestClient]:
    app = create_app(runtime)
    with TestClient(app, base_url="http://127.0.0.1:11434", raise_server_exceptions=False) as c:
        yield c


def clean(text: str, tmp: Path) -> None:
    for needle in [*FORBIDDEN, str(tmp)]:
        assert needle not in text, f"{needle!r} leaked in {text!r}"


@pytest.mark.parametrize("kind", ["oserror", "permission", "clienterror", "bug"])
@pytest.mark.parametrize(("store", "call", "request_"), [
    ("blobs", "writer", ("POST", "/api/blobs/{digest}", None)),
    ("blobs", "commit", ("POST", "/api/blobs/{digest}", None)),
    ("blobs", "size", ("HEAD", "/api/blobs/{digest}", None)),
    ("manifests", "list", ("GET", "/api/tags", None)),
    ("manifests", "get", ("POST", "/api/show", {"model": "tiny"})),
    ("manifests", "put", ("POST", "/api/copy", {"source": "tiny", "destination": "t2"})),
    ("manifests", "put", ("POST", "/api/create", {"model": "t3", "from": "tiny", "stream": True})),
    ("blobs", "open", ("POST", "/api/show", {"model": "tiny"})),
    ("state", "query", ("GET", "/api/ps", None)),
])
def test_internal_errors_reveal_nothing(client: TestClient, world: FaultyWorld, tmp_path: Path, kind: str,
                                        store: str, call: str, request_: tuple) -> None:
    data = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    world.blobs.put_bytes(data)
    r = client.post("/api/create", json={"model": "tiny", "files": {"t.gguf": digest}, "system": "s",
                                         "stream": False})
    assert r.status_code == 200
    other = b"fresh bytes"
    method, path, body = request_
    path = path.format(digest="sha256:" + hashlib.sha256(other).hexdigest())
    getattr(world, store).fail_on(call, 1, exceptions(tmp_path)[kind])
    r = client.request(method, path, json=body, content=other if body is None and method == "POST" else None)
    clean(r.text, tmp_path)
    clean(json.dumps(dict(r.headers)), tmp_path)
    if r.status_code >= 500 and method != "HEAD":
        assert r.json() in ({"error": "internal server error"}, {"error": r.json()["error"]})


def test_aws_errors_name_no_bucket_or_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, blobs, manifests, state = aws_stores(tmp_path / "cache")
        throttle(s3, "PutObject", kind="s3", times=10)
        with pytest.raises(StoreError) as e:
            blobs.put_bytes(b"abc")
        clean(str(e.value), tmp_path)
        assert "SlowDown" in str(e.value)


@pytest.mark.parametrize("body", [
    {"model": "x", "path": "/etc/passwd"},
    {"model": "x", "path": "/etc/passwd", "modelfile": "FROM /etc/passwd"},
    {"model": "x", "modelfile": "FROM /etc/passwd"},
    {"model": "x", "modelfile": "FROM ../../../../etc/passwd"},
    {"model": "x", "modelfile": "FROM tiny\nADAPTER /etc/passwd"},
    {"model": "x", "modelfile": "FROM tiny\nLICENSE /etc/shadow"},
    {"model": "x", "files": {"../../etc/passwd": "sha256:" + "0" * 64}},
    {"model": "x", "files": {"/etc/passwd": "sha256:" + "0" * 64}},
    {"model": "x", "from": "/etc/passwd"},
    {"model": "x", "from": "file:///etc/passwd"},
])
def test_create_path_fields_cannot_reach_the_filesystem(tmp_path: Path, body: dict) -> None:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, inference=False)
    with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
        r = c.post("/api/create", json={**body, "stream": False})
        assert r.status_code in (400, 404), r.text
        assert "root:" not in r.text and "/bin/" not in r.text
        clean(r.text, tmp_path)
    runtime.close()
