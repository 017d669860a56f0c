"""T-35 slow request bodies: a JSON body that stalls longer than the body idle timeout, or that
trickles past the whole-body deadline, gets a 408 ``{"error": ...}`` and its connection is closed;
a blob upload that stalls is closed the same way, while one whose bytes keep flowing succeeds
however long it takes (blob uploads have no total deadline). Raw sockets against a real server."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from serving import RunningServer, free_port, run_server
from skyllama.composition import build_runtime
from skyllama.digests import Digest
from skyllama.http.app import create_app
from skyllama.http.server_timeouts import protocol_with_header_timeout
from skyllama.settings import Settings

IDLE = 0.6  # seconds a body may pause
TOTAL = 1.5  # seconds a JSON body may take in all


@pytest.fixture
def slow_server(models_dir: Path) -> Iterator[RunningServer]:
    with run_server(models_dir, body_idle_timeout=IDLE, body_timeout=TOTAL) as server:
        yield server


def _open(server: RunningServer | int, method: str, path: str, length: int, content_type: str) -> socket.socket:
    port = server if isinstance(server, int) else int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n")
    sock.sendall(head.encode())
    return sock


def _trickle(sock: socket.socket, data: bytes, piece: int, every: float) -> None:
    """Send ``data`` ``piece`` bytes at a time, one piece every ``every`` seconds, until the server hangs up."""
    for start in range(0, len(data), piece):
        try:
            sock.sendall(data[start:start + piece])
        except OSError:
            return  # closed by the server: what the slow cases expect
        time.sleep(every)


def _reply_and_close(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    sock.settimeout(within)
    started = time.monotonic()
    reply = b""
    try:
        while chunk := sock.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {within} s; got {reply!r}")
    return reply, time.monotonic() - started


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a kept-alive connection."""
    sock.settimeout(5)
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _assert_408(reply: bytes) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert b"connection: close" in head.lower()
    assert "error" in json.loads(body)


def test_a_stalled_json_body_gets_408_and_is_closed(slow_server: RunningServer) -> None:
    body = json.dumps({"model": "x", "prompt": "hi"}).encode()
    started = time.monotonic()
    sock = _open(slow_server, "POST", "/api/generate", len(body), "application/json")
    sock.sendall(body[:5])  # and then nothing
    reply, _ = _reply_and_close(sock, within=IDLE + 3)
    _assert_408(reply)
    assert time.monotonic() - started < IDLE + 2
    sock.close()


def test_a_json_body_trickled_past_the_deadline_gets_408_and_is_closed(slow_server: RunningServer) -> None:
    body = json.dumps({"model": "x", "prompt": "y" * 200}).encode()
    sock = _open(slow_server, "POST", "/api/chat", len(body), "application/json")
    started = time.monotonic()
    _trickle(sock, body, piece=1, every=IDLE / 3)  # never idle long enough, but ~14 s in all
    reply, _ = _reply_and_close(sock, within=3)
    _assert_408(reply)
    assert time.monotonic() - started < TOTAL + 3  # cut at the deadline, not at the body's end
    sock.close()


def test_a_stalled_blob_upload_is_closed_and_keeps_nothing(slow_server: RunningServer) -> None:
    data = b"z" * 100_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sock = _open(slow_server, "POST", f"/api/blobs/{digest}", len(data), "application/octet-stream")
    sock.sendall(data[:10_000])
    time.sleep(IDLE * 2.5)  # a pause longer than the idle timeout
    reply, _ = _reply_and_close(sock, within=3)
    _assert_408(reply)
    sock.close()
    assert not slow_server.runtime.blobs.exists(Digest.parse(digest))
    assert not list((slow_server.settings.models / "blobs").glob(".partial*"))  # the upload was aborted


def test_a_blob_upload_that_keeps_flowing_is_never_cut(slow_server: RunningServer) -> None:
    data = bytes(range(256)) * 40  # 10 KiB, in 16 pieces: ~3.2 s, past both timeouts, never idle
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sock = _open(slow_server, "POST", f"/api/blobs/{digest}", len(data), "application/octet-stream")
    started = time.monotonic()
    _trickle(sock, data, piece=len(data) // 16, every=IDLE / 3)
    assert time.monotonic() - started > TOTAL + IDLE
    reply = _response(sock)
    assert reply.startswith(b"HTTP/1.1 201"), reply
    sock.close()
    assert slow_server.runtime.blobs.exists(Digest.parse(digest))


def test_a_body_sent_at_once_and_a_kept_alive_connection_are_unaffected(slow_server: RunningServer) -> None:
    sock = _open(slow_server, "POST", "/api/show", 2, "application/json")
    sock.sendall(b"{}")
    first = _response(sock)
    assert first.startswith(b"HTTP/1.1 400") and b"model" in first, first  # answered, not timed out
    time.sleep(IDLE * 2)  # idle between requests is the keep-alive timeout's business, not this one's
    sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _response(sock).startswith(b"HTTP/1.1 200")
    sock.close()


def test_skyllama_serve_protocol_closes_stalled_bodies_too(models_dir: Path) -> None:
    """The same under the h11 protocol ``skyllama serve`` runs (header deadline included)."""
    settings = Settings.from_env({}, models=models_dir, state_db=models_dir / "s.db",
                                 body_idle_timeout=IDLE, body_timeout=TOTAL)
    runtime = build_runtime(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning", http=protocol_with_header_timeout(5)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        sock = _open(port, "POST", "/api/embed", 100, "application/json")
        sock.sendall(b'{"model": ')
        reply, _ = _reply_and_close(sock, within=IDLE + 3)
        _assert_408(reply)
        sock.close()
    finally:
        server.should_exit = True
        thread.join(10)
        runtime.close()
