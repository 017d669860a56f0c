"""A scriptable registry on 127.0.0.1 (Starlette under uvicorn in a thread) for pull tests.

It serves one manifest and its blobs, honours ``Range`` unless told not to, and can misbehave on
purpose: cut connections after a byte budget, change its ETag, send wrong bytes, odd headers,
redirects, or auth challenges. It counts the blob bytes it sends and logs every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from skyllama.manifest import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MEDIA_MODEL


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
           "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(config), "size": len(config)},
           "layers": [{"mediaType": MEDIA_MODEL, "digest": digest_of(b), "size": len(b)} for b in layers]}
    return json.dumps(doc).encode()


@dataclass
class FakeRegistry:
    """State and knobs; tests change the knobs between pulls."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes = b""
    manifest_headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = '"v1"'
    ranges: bool = True
    budget: int | None = None  # blob bytes to send before cutting and then failing with 503
    stall_after: int | None = None  # blob bytes each response sends before it hangs (a slow upstream)
    chunk: int = 4096
    delay: float = 0.0
    blob_headers: dict[str, str] = field(default_factory=dict)
    served: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    hook: Callable[[Request], Response | None] | None = None
    url: str = ""

    def publish(self, config: bytes, layers: list[bytes]) -> None:
        for data in (config, *layers):
            self.blobs[digest_of(data)] = data
        self.manifest = manifest_for(config, layers)

    def blob_requests(self) -> int:
        return sum(1 for _m, p, _h in self.requests if "/blobs/" in p)

    # -- the app ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path, dict(request.headers)))
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path == "/v2/" or path == "/v2":
            return JSONResponse({})
        if "/manifests/" in path:
            return Response(self.manifest, media_type=MANIFEST_MEDIA_TYPE, headers=self.manifest_headers)
        if "/blobs/" in path:
            return self._blob(request, path.rsplit("/", 1)[1])
        return JSONResponse({"errors": [{"code": "UNSUPPORTED"}]}, status_code=404)

    def _blob(self, request: Request, digest: str) -> Response:
        data = self.blobs.get(digest)
        if data is None:
            return JSONResponse({"errors": [{"code": "BLOB_UNKNOWN"}]}, status_code=404)
        if self.budget is not None and self.budget <= 0:
            return JSONResponse({"errors": [{"code": "UNAVAILABLE"}]}, status_code=503)
        start, end, status = 0, len(data) - 1, 200
        header = request.headers.get("range")
        if header and self.ranges:
            first, _, last = header.removeprefix("bytes=").partition("-")
            start, end, status = int(first), min(int(last or len(data) - 1), len(data) - 1), 206
        headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if self.etag:
            headers["ETag"] = self.etag
        headers.update(self.blob_headers)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(self._stream(data[start:end + 1]), status_code=status, headers=headers)

    async def _stream(self, body: bytes) -> AsyncIterator[bytes]:
        sent = 0
        for i in range(0, len(body), self.chunk):
            piece = body[i:i + self.chunk]
            if self.stall_after is not None:
                if sent >= self.stall_after:
                    await asyncio.sleep(60)  # until the client gives up and disconnects
                    return
                piece = piece[: self.stall_after - sent]
            sent += len(piece)
            if self.budget is not None:
                if self.budget <= 0:
                    raise ConnectionResetError("cut by the test")
                piece = piece[: self.budget]
                self.budget -= len(piece)
            self.served += len(piece)
            if self.delay:
                await asyncio.sleep(self.delay)
            yield piece


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_registry(registry: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    """Run ``registry`` on a free 127.0.0.1 port until the block ends (``registry.url`` is set)."""
    registry = registry or FakeRegistry()
    app = Starlette(routes=[Route("/{path:path}", registry.handle, methods=["GET", "HEAD", "POST", "PUT", "PATCH"])])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("fake registry did not start")
        time.sleep(0.01)
    registry.url = f"http://127.0.0.1:{port}"
    try:
        yield registry
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class RecordingTransport(httpx.AsyncBaseTransport):
    """The innermost transport for skyllama's outbound calls: logs every address actually
    dialled and refuses (without dialling) anything but 127.0.0.1."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(retries=0)
        self.dialed: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.dialed.append(f"{request.url.host}:{request.url.port}")
        if request.url.host != "127.0.0.1":
            raise httpx.ConnectError("test transport only dials 127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Kept open: one recorder serves every registry client of a test server."""


def pull(url: str, model: str, **body: Any) -> httpx.Response:
    """``POST /api/pull`` with ``stream: false`` (insecure by default, as the fakes speak http)."""
    return httpx.post(f"{url}/api/pull", json={"model": model, "insecure": True, "stream": False, **body},
                      timeout=60)
