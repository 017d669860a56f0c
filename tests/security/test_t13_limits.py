"""T-13 resource limits: body and encoded-body caps (413/415), ``num_ctx``/``num_predict``/message/
image caps and type confusion (400), per-key concurrency (429), the queue limit (503), header and
idle timeouts on the server's connections, and a mid-stream failure ending the NDJSON stream with
an ``{"error": ...}`` line."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ggufs import write_tiny_gguf
from serving import free_port, run_server
from skyllama.composition import build_runtime
from skyllama.engine.base import LoadSpec
from skyllama.engine.fake import FakeEngine, FakeModel
from skyllama.http.app import create_app
from skyllama.http.server_timeouts import protocol_with_header_timeout
from skyllama.settings import Settings

LIMITS = {"max_request_bytes": 4096, "max_blob_bytes": 2048, "max_num_ctx": 1024, "max_num_predict": 100,
          "max_messages": 3, "max_images": 2, "max_image_bytes": 1024}


class WrappingEngine(FakeEngine):
    """A fake engine whose loaded models a test may alter (``wrap``) after the server started."""

    wrap: Callable[[FakeModel], FakeModel] | None = None

    def load(self, spec: LoadSpec) -> FakeModel:
        model = super().load(spec)
        return self.wrap(model) if self.wrap is not None else model


@pytest.fixture
def engine() -> WrappingEngine:
    return WrappingEngine()


@pytest.fixture
def app(tmp_path: Path, engine: WrappingEngine) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db", **LIMITS)
    runtime = build_runtime(settings, engine=engine)
    yield create_app(runtime)
    runtime.close()


@pytest.fixture
def client(app: FastAPI, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:11434", raise_server_exceptions=False) as c:
        data = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        app.state.runtime.blobs.put_bytes(data)
        r = c.post("/api/create", json={"model": "tiny", "files": {"t.gguf": digest},
                                        "template": "{{ .Prompt }}", "stream": False})
        assert r.status_code == 200, r.text
        yield c


def test_json_body_over_the_cap_is_413_declared_or_streamed(client: TestClient) -> None:
    big = json.dumps({"model": "tiny", "prompt": "x" * 5000})
    assert client.post("/api/generate", content=big).status_code == 413
    chunked = client.post("/api/generate", content=iter([big[:3000].encode(), big[3000:].encode()]))
    assert chunked.status_code == 413 and "too large" in chunked.json()["error"]


def test_blob_over_the_cap_is_413_and_nothing_is_kept(client: TestClient, app: FastAPI) -> None:
    data = b"x" * 3000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 413
    assert client.post(f"/api/blobs/{digest}", content=iter([data[:1500], data[1500:]])).status_code == 413
    assert client.head(f"/api/blobs/{digest}").status_code == 404
    assert not any(p.name.startswith(".partial") for p in (app.state.runtime.settings.models / "blobs").iterdir())


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/create", "/api/blobs/sha256:" + "0" * 64])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, identity"])
def test_compressed_bodies_are_refused_with_415(client: TestClient, path: str, encoding: str) -> None:
    bomb = gzip.compress(b"{" + b" " * (1 << 20) + b"}")  # ~1 KiB that would inflate to 1 MiB
    r = client.post(path, content=bomb, headers={"Content-Encoding": encoding})
    assert r.status_code == 415 and "error" in r.json()


@pytest.mark.parametrize(("body", "needle"), [
    ({"options": {"num_ctx": 2048}}, "num_ctx"),
    ({"options": {"num_predict": 101}}, "num_predict"),
    ({"options": {"num_predict": -2}}, "num_predict"),
    ({"options": {"num_ctx": "lots"}}, "num_ctx"),
    ({"options": ["num_ctx", 1]}, ""),
    ({"options": {"temperature": {"$gt": 1}}}, "temperature"),
    ({"keep_alive": "forever-ish"}, ""),
    ({"keep_alive": [1]}, ""),
    ({"images": ["QUJD"] * 3}, "images"),
    ({"images": [base64.b64encode(b"x" * 2000).decode()]}, "image"),
    ({"images": ["not base64!"]}, ""),
    ({"prompt": {"text": "hi"}}, ""),
    ({"stream": "yes please"}, ""),
])
def test_generate_caps_and_type_confusion_are_400(client: TestClient, body: dict, needle: str) -> None:
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False, **body})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "hi"}] * 4,
    [{"role": "user", "content": "hi", "images": ["QUJD", "QUJD"]}, {"role": "user", "images": ["QUJD"]}],
    [{"role": "user", "content": 5}],
    [{"role": "root", "content": "hi"}],
    "hello",
])
def test_chat_caps_are_400(client: TestClient, messages: object) -> None:
    r = client.post("/api/chat", json={"model": "tiny", "messages": messages, "stream": False})
    assert r.status_code == 400, r.text


def test_create_parameters_type_confusion_is_400(client: TestClient) -> None:
    for parameters in ({"temperature": "hot"}, ["temperature", 1], {"num_ctx": {"a": 1}}):
        r = client.post("/api/create", json={"model": "x", "from": "tiny", "parameters": parameters,
                                             "stream": False})
        assert r.status_code == 400, r.text


def test_mid_stream_failure_ends_with_an_error_line(client: TestClient, engine: WrappingEngine) -> None:
    def broken(model: FakeModel) -> FakeModel:
        def generate(*_a: object, **_k: object) -> Iterator[str]:
            yield "first "
            raise RuntimeError("/srv/secret/weights.gguf exploded")

        model.generate = generate  # type: ignore[method-assign]
        return model

    engine.wrap = broken
    with client.stream("POST", "/api/generate", json={"model": "tiny", "prompt": "hi"}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert r.status_code == 200 and lines[0]["response"] == "first "
    assert lines[-1] == {"error": "internal server error"}  # in-band, and nothing leaked


def test_per_key_concurrency_is_429(tmp_path: Path) -> None:
    with run_server(tmp_path, engine=FakeEngine(), auth="on", max_concurrent_per_key=1) as server:
        keys = server.runtime.keys
        one = {"Authorization": "Bearer " + keys.create_key(name="a", owner="a", scopes=["manage", "inference"])[0]}
        two = {"Authorization": "Bearer " + keys.create_key(name="b", owner="b", scopes=["manage", "inference"])[0]}
        release = threading.Event()
        data = b"y" * 5000
        digest = "sha256:" + hashlib.sha256(data).hexdigest()

        def slow_body() -> Iterator[bytes]:
            yield data[:10]
            release.wait(10)
            yield data[10:]

        import httpx

        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(httpx.post(
            f"{server.url}/api/blobs/{digest}", content=slow_body(), headers=one, timeout=20).status_code))
        t.start()
        deadline = time.time() + 10
        while not server.runtime.concurrency and time.time() < deadline:
            time.sleep(0.02)
        busy = httpx.get(f"{server.url}/api/tags", headers=one)
        other = httpx.get(f"{server.url}/api/tags", headers=two)
        release.set()
        t.join(20)
        assert busy.status_code == 429 and busy.headers["Retry-After"] and "error" in busy.json()
        assert other.status_code == 200 and result == [201]
        assert httpx.get(f"{server.url}/api/tags", headers=one).status_code == 200  # slot released


def _serve(app: FastAPI, header_timeout: float, idle: int) -> tuple[uvicorn.Server, int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=idle,
                            http=protocol_with_header_timeout(header_timeout))
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, port


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _get_version(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = b""
    while not reply.endswith(b"}"):
        reply += sock.recv(4096)
    return reply


def test_slow_headers_and_idle_connections_are_closed(app: FastAPI) -> None:
    server, port = _serve(app, header_timeout=0.5, idle=1)
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
        assert _closed_within(slow, 3)
        idle = socket.create_connection(("127.0.0.1", port))
        assert b"200 OK" in _get_version(idle)
        assert _closed_within(idle, 4)  # idle keep-alive (or header deadline) closes it
        quick = socket.create_connection(("127.0.0.1", port))
        for _ in range(3):  # a client that sends heads promptly keeps its connection
            assert b"200 OK" in _get_version(quick)
            time.sleep(0.2)
        for s in (slow, idle, quick):
            s.close()
    finally:
        server.should_exit = True
