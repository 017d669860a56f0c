"""Fault injection over the upload, create, copy, delete, pull and push flows (T-20, T-22).

Every store call a flow makes is made to fail in turn (the nth call of each name); after each
fault the folder is re-opened with fresh adapters, as a restarted process would, and must be
consistent: no manifest points at a missing blob, no blob holds bytes other than its name says.
Then the faults are cleared and the same request is retried: it must converge to success.
A crash between the blobs and the manifest (no clean-up code runs) leaves the same guarantees.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from faults import Crash, FaultyWorld, crash_between_blob_and_manifest, faulty_world, store_is_consistent

from fake_registry import FakeRegistry, serve_registry
from ggufs import write_tiny_gguf
from serving import run_server
from skyllama.http.app import create_app
from skyllama.services.models.gc import collect_garbage

CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'
BLOB_CALLS = [("blobs", c, n) for c in ("size", "writer", "write", "commit", "list", "delete") for n in (1, 2)]
MANIFEST_CALLS = [("manifests", c, n) for c in ("get", "put", "list") for n in (1, 2)]
STATE_CALLS = [("state", c, 1) for c in ("get", "put", "query")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FaultyWorld]:
    w = faulty_world(tmp_path / "models", registry_allow_loopback=True)
    yield w
    w.clear()
    w.runtime.close()


@pytest.fixture
def client(world: FaultyWorld) -> Iterator[TestClient]:
    app = create_app(world.runtime)
    with TestClient(app, base_url="http://127.0.0.1:11434", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def gguf(tmp_path: Path) -> tuple[bytes, str]:
    data = write_tiny_gguf(tmp_path / "t.gguf", seed=7).read_bytes()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def consistent(world: FaultyWorld) -> None:
    blobs, manifests = world.fresh()
    assert store_is_consistent(blobs, manifests) == []


def inject(world: FaultyWorld, store: str, call: str, nth: int) -> None:
    getattr(world, store).fail_on(call, nth)


CREATE = {"template": "{{ .Prompt }}", "system": "be brief", "parameters": {"temperature": 0.5}, "stream": False}


@pytest.mark.parametrize(("store", "call", "nth"), BLOB_CALLS + MANIFEST_CALLS + STATE_CALLS)
def test_create_after_any_fault_is_consistent_and_a_retry_converges(
        client: TestClient, world: FaultyWorld, gguf: tuple[bytes, str], store: str, call: str, nth: int) -> None:
    data, digest = gguf
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    body = {"model": "tiny:v1", "files": {"t.gguf": digest}, **CREATE}
    inject(world, store, call, nth)
    first = client.post("/api/create", json=body)
    assert first.status_code in (200, 503), first.text
    consistent(world)
    world.clear()
    retry = client.post("/api/create", json=body)
    assert retry.status_code == 200 and retry.json()["status"] == "success", retry.text
    assert client.post("/api/show", json={"model": "tiny:v1"}).status_code == 200
    consistent(world)


@pytest.mark.parametrize(("store", "call", "nth"), [("blobs", c, 1) for c in ("size", "writer", "write", "commit")]
                         + [("state", "put", 1)])
def test_upload_fault_commits_nothing_and_a_retry_converges(
        client: TestClient, world: FaultyWorld, gguf: tuple[bytes, str], store: str, call: str, nth: int) -> None:
    data, digest = gguf
    inject(world, store, call, nth)
    first = client.post(f"/api/blobs/{digest}", content=data)
    assert first.status_code in (201, 503), first.text
    blobs, _ = world.fresh()
    assert [str(d) for d in blobs.list()] == ([digest] if first.status_code == 201 else [])
    consistent(world)
    world.clear()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    assert client.head(f"/api/blobs/{digest}").status_code == 200


def test_a_hung_store_call_blocks_only_its_request(client: TestClient, world: FaultyWorld,
                                                   gguf: tuple[bytes, str]) -> None:
    data, digest = gguf
    world.blobs.hang_on("commit", timeout=20)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(client.post(f"/api/blobs/{digest}", content=data).status_code))
    t.start()
    assert world.blobs.hanging.wait(10)
    assert client.get("/api/tags").status_code == 200  # the server still answers
    world.blobs.release()
    t.join(20)
    assert result == [503]
    assert list(world.fresh()[0].list()) == []


def _created(client: TestClient, gguf: tuple[bytes, str], name: str = "tiny:v1") -> None:
    data, digest = gguf
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    r = client.post("/api/create", json={"model": name, "files": {"t.gguf": digest}, **CREATE})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("store", "call"), [("manifests", "get"), ("manifests", "put"), ("state", "put")])
def test_copy_fault_is_consistent_and_a_retry_converges(client: TestClient, world: FaultyWorld,
                                                        gguf: tuple[bytes, str], store: str, call: str) -> None:
    _created(client, gguf)
    inject(world, store, call, 1)
    assert client.post("/api/copy", json={"source": "tiny:v1", "destination": "copy:v1"}).status_code in (200, 503)
    consistent(world)
    world.clear()
    assert client.post("/api/copy", json={"source": "tiny:v1", "destination": "copy:v1"}).status_code == 200
    assert client.post("/api/show", json={"model": "copy:v1"}).status_code == 200


@pytest.mark.parametrize(("store", "call"), [("manifests", "delete"), ("manifests", "list"),
                                             ("blobs", "delete"), ("state", "delete")])
def test_delete_fault_never_dangles_and_gc_converges(client: TestClient, world: FaultyWorld,
                                                     gguf: tuple[bytes, str], store: str, call: str) -> None:
    _created(client, gguf, "a:v1")
    assert client.post("/api/copy", json={"source": "a:v1", "destination": "b:v1"}).status_code == 200
    inject(world, store, call, 1)
    r = client.request("DELETE", "/api/delete", json={"model": "a:v1"})
    assert r.status_code in (200, 503)
    consistent(world)
    assert client.post("/api/show", json={"model": "b:v1"}).status_code == 200  # shared layers kept
    world.clear()
    client.request("DELETE", "/api/delete", json={"model": "a:v1"})
    assert client.post("/api/show", json={"model": "a:v1"}).status_code == 404
    svc = world.runtime
    for _ in range(2):
        collect_garbage(svc.blobs, svc.manifests, svc.state, grace_seconds=0)
    consistent(world)
    assert client.post("/api/show", json={"model": "b:v1"}).status_code == 200


def test_crash_between_blobs_and_manifest_leaves_a_consistent_store(world: FaultyWorld,
                                                                    gguf: tuple[bytes, str]) -> None:
    data, digest = gguf
    creator = world.runtime.creator
    world.blobs.put_bytes(data)
    plan = creator.plan({"model": "tiny:v1", "files": {"t.gguf": digest}, **CREATE}, None)
    crash_between_blob_and_manifest(world.blobs, world.manifests)
    with pytest.raises(Crash):
        for _ in creator.run(plan):
            pass
    blobs, manifests = world.fresh()
    assert manifests.list() == [] and len(list(blobs.list())) > 1  # blobs written, no manifest
    assert store_is_consistent(blobs, manifests) == []
    world.clear()
    events = list(creator.run(creator.plan({"model": "tiny:v1", "files": {"t.gguf": digest}, **CREATE}, None)))
    assert events[-1] == {"status": "success"}
    assert store_is_consistent(*world.fresh()) == []


@pytest.fixture
def registry(gguf: tuple[bytes, str]) -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        reg.publish(CONFIG, [gguf[0]])
        yield reg


@pytest.mark.parametrize(("store", "call", "nth"), [("blobs", c, 1) for c in ("size", "writer", "write", "commit")]
                         + [("manifests", "put", 1), ("manifests", "get", 1), ("state", "put", 1)])
def test_pull_fault_commits_no_dangling_manifest_and_a_retry_converges(
        client: TestClient, world: FaultyWorld, registry: FakeRegistry, store: str, call: str, nth: int) -> None:
    name = registry.url.removeprefix("http://") + "/ns/tiny:v1"
    inject(world, store, call, nth)
    first = client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert first.status_code in (200, 503) or "error" in first.json(), first.text
    consistent(world)
    world.clear()
    retry = client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert retry.status_code == 200 and retry.json()["status"] == "success", retry.text
    consistent(world)


@pytest.mark.parametrize("call", ["open", "size"])
def test_push_fault_leaves_the_target_consistent_and_a_retry_converges(
        client: TestClient, world: FaultyWorld, gguf: tuple[bytes, str], tmp_path: Path, call: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with run_server(target, registry_allow_loopback=True) as dest:
        name = f"{dest.url.removeprefix('http://')}/ns/tiny:v1"
        _created(client, gguf, name)
        world.blobs.fail_on(call, 1)
        client.post("/api/push", json={"model": name, "insecure": True, "stream": False})
        assert store_is_consistent(dest.runtime.blobs, dest.runtime.manifests) == []
        world.clear()
        retry = client.post("/api/push", json={"model": name, "insecure": True, "stream": False})
        assert retry.status_code == 200 and retry.json()["status"] == "success", retry.text
        assert store_is_consistent(dest.runtime.blobs, dest.runtime.manifests) == []
        assert len(dest.runtime.manifests.list()) == 1
