"""T-06: a rogue registry on 127.0.0.1 cannot make a pull write anything bad or call anywhere bad.

Every case ends with nothing committed (no blob, no manifest), no forbidden address dialled
(the innermost transport logs every dial and refuses anything but 127.0.0.1), and no token sent
to another host.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from fake_registry import FakeRegistry, RecordingTransport, digest_of, pull, serve_registry
from serving import RunningServer, run_server
from skyllama.engine.fake import FakeEngine
from skyllama.manifest import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MEDIA_MODEL
from skyllama.services.registry.outbound import Outbound, OutboundPolicy
from skyllama.settings import Settings

CONFIG = b'{"model_format":"gguf"}'


@pytest.fixture
def puller(tmp_path: Path) -> Iterator[tuple[RunningServer, RecordingTransport]]:
    folder = tmp_path / "puller"
    folder.mkdir()
    recorder = RecordingTransport()  # the policy reads AWS_LAMBDA_RUNTIME_API now, as at a process start
    outbound = Outbound(OutboundPolicy.from_settings(Settings.from_env({}, registry_allow_loopback=True)),
                        inner=recorder)
    with run_server(folder, registry_allow_loopback=True, outbound=outbound, engine=FakeEngine()) as server:
        yield server, recorder


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        reg.publish(CONFIG, [os.urandom(20000)])
        yield reg


def name_of(reg: FakeRegistry) -> str:
    return reg.url.removeprefix("http://") + "/ns/m:t"


def nothing_committed(server: RunningServer) -> None:
    models = server.settings.models
    assert not [p for p in (models / "blobs").iterdir() if p.name.startswith("sha256-")]
    assert not (models / "manifests").exists() or not [p for p in (models / "manifests").rglob("*") if p.is_file()]


def only_registry_dialled(recorder: RecordingTransport, reg: FakeRegistry) -> None:
    port = reg.url.rsplit(":", 1)[1]
    assert recorder.dialed and all(d == f"127.0.0.1:{port}" for d in recorder.dialed), recorder.dialed


def raw_manifest(layers: list[dict[str, object]], config: dict[str, object] | None = None) -> bytes:
    config = config or {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(CONFIG), "size": len(CONFIG)}
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "config": config,
                       "layers": layers}).encode()


def refused(server: RunningServer, reg: FakeRegistry) -> str:
    r = pull(server.url, name_of(reg))
    assert 400 <= r.status_code < 600 and r.status_code != 500, r.text
    nothing_committed(server)
    message: str = r.json()["error"]
    return message


@pytest.mark.parametrize("digest", ["sha256:../../x", "sha256:../../../../etc/passwd" + "0" * 30,
                                    "sha256-" + "A" * 64, "sha512:" + "0" * 128, "", "sha256:%2e%2e%2f"])
def test_traversal_and_bad_digests(puller: tuple[RunningServer, RecordingTransport], registry: FakeRegistry,
                                   digest: str) -> None:
    server, _ = puller
    registry.manifest = raw_manifest([{"mediaType": MEDIA_MODEL, "digest": digest, "size": 10}])
    assert "digest" in refused(server, registry)
    assert registry.blob_requests() == 0


def test_duplicate_digest_with_different_sizes(puller: tuple[RunningServer, RecordingTransport],
                                               registry: FakeRegistry) -> None:
    server, _ = puller
    layer = {"mediaType": MEDIA_MODEL, "digest": digest_of(CONFIG), "size": len(CONFIG) + 5}
    registry.manifest = raw_manifest([layer])
    assert "different sizes" in refused(server, registry)
    assert registry.blob_requests() == 0


def test_duplicate_config_and_layer_digest_is_fetched_once(puller: tuple[RunningServer, RecordingTransport],
                                                           registry: FakeRegistry) -> None:
    server, _ = puller
    layer = {"mediaType": MEDIA_MODEL, "digest": digest_of(CONFIG), "size": len(CONFIG)}
    registry.manifest = raw_manifest([layer, layer])
    assert pull(server.url, name_of(registry)).json() == {"status": "success"}
    assert registry.served == len(CONFIG)


def test_oversized_manifest(puller: tuple[RunningServer, RecordingTransport], registry: FakeRegistry) -> None:
    server, _ = puller
    registry.manifest = b" " * (2 << 20)
    assert "too large" in refused(server, registry)

    def chunked(request: Request) -> Response | None:
        if "/manifests/" in request.url.path:
            return StreamingResponse(iter([b" " * (256 << 10)] * 8), media_type=MANIFEST_MEDIA_TYPE)
        return None

    registry.hook = chunked
    assert "too large" in refused(server, registry)


def test_gzip_bomb_manifest(puller: tuple[RunningServer, RecordingTransport], registry: FakeRegistry) -> None:
    server, _ = puller
    registry.manifest = gzip.compress(b"{" + b" " * (64 << 20))
    registry.manifest_headers = {"Content-Encoding": "gzip"}
    assert "encoded" in refused(server, registry)


def blob_hook(status: int, headers: dict[str, str], body: bytes | None) -> object:
    def hook(request: Request) -> Response | None:
        if "/blobs/" not in request.url.path:
            return None
        if body is None:
            return StreamingResponse(iter([b"x" * 100]), status_code=status, headers=headers)
        return Response(body, status_code=status, headers=headers)
    return hook


def test_blob_content_length_zero_huge_and_missing(puller: tuple[RunningServer, RecordingTransport],
                                                   registry: FakeRegistry) -> None:
    server, _ = puller
    registry.hook = blob_hook(206, {"Content-Range": "bytes 0-19999/20000"}, b"")  # type: ignore[assignment]
    refused(server, registry)

    def huge(request: Request) -> Response | None:
        if "/blobs/" not in request.url.path:
            return None
        response = Response(b"x" * 10, status_code=206, headers={"Content-Range": "bytes 0-19999/20000"})
        response.headers["content-length"] = str(1 << 40)
        return response

    registry.hook = huge
    assert "Content-Length" in refused(server, registry)
    registry.hook = None
    layer = next(iter(b for d, b in registry.blobs.items() if d != digest_of(CONFIG)))

    def missing(request: Request) -> Response | None:  # chunked: no Content-Length at all
        if "/blobs/" not in request.url.path or digest_of(layer) not in request.url.path:
            return None
        return StreamingResponse(iter([layer[:5000], layer[5000:]]), status_code=206,
                                 headers={"Content-Range": "bytes 0-19999/20000"})

    registry.hook = missing
    assert pull(server.url, name_of(registry)).json() == {"status": "success"}


def test_hash_mismatch(puller: tuple[RunningServer, RecordingTransport], registry: FakeRegistry) -> None:
    server, _ = puller
    for digest in list(registry.blobs):
        registry.blobs[digest] = bytes(len(registry.blobs[digest]))
    assert "digest mismatch" in refused(server, registry)


@pytest.fixture
def runtime_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """A listener standing in for the Lambda runtime API; records every connection it accepts."""
    accepted: list[object] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, addr = sock.accept()
                accepted.append(addr)
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", f"127.0.0.1:{sock.getsockname()[1]}")
    yield accepted
    stop.set()
    thread.join(timeout=2)
    sock.close()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x",
                                    "http://[fd00:ec2::254]/x", "http://[::ffff:169.254.169.254]/x",
                                    "RUNTIME", "http://metadata.google.internal/x"])
def test_redirects_to_forbidden_addresses(runtime_api: list[object], puller: tuple[RunningServer, RecordingTransport],
                                          registry: FakeRegistry, target: str) -> None:
    server, recorder = puller
    if target == "RUNTIME":
        target = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation/next"
    registry.hook = lambda r: Response(status_code=307, headers={"Location": target}) \
        if "/blobs/" in r.url.path else None
    assert "refusing" in refused(server, registry)
    only_registry_dialled(recorder, registry)
    assert runtime_api == []


def token_hook(registry: FakeRegistry, realm: str) -> object:
    """Registry that wants a bearer token from ``realm`` and redirects blobs to a "CDN" host."""
    cdn = registry.url.replace("127.0.0.1", "localhost")

    def hook(request: Request) -> Response | None:
        path = request.url.path
        if path == "/token":
            return JSONResponse({"token": "secret-token"})
        if path.startswith("/cdn/"):
            return registry._blob(request, path.rsplit("/", 1)[1])
        if request.headers.get("authorization") != "Bearer secret-token":
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:ns/m:pull"'
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED"}]}, status_code=401,
                                headers={"WWW-Authenticate": challenge})
        if "/blobs/" in path:
            return Response(status_code=307, headers={"Location": f"{cdn}/cdn/{path.rsplit('/', 1)[1]}"})
        return None

    return hook


def test_token_realm_on_another_host_is_refused(puller: tuple[RunningServer, RecordingTransport],
                                                registry: FakeRegistry) -> None:
    server, recorder = puller
    registry.hook = token_hook(registry, registry.url.replace("127.0.0.1", "localhost") + "/token")  # type: ignore
    assert "realm" in refused(server, registry)
    assert not [p for _m, p, _h in registry.requests if p == "/token"]
    only_registry_dialled(recorder, registry)


def test_token_is_never_sent_cross_host(puller: tuple[RunningServer, RecordingTransport],
                                        registry: FakeRegistry) -> None:
    server, _ = puller
    registry.hook = token_hook(registry, registry.url + "/token")  # type: ignore[assignment]
    assert pull(server.url, name_of(registry)).json() == {"status": "success"}
    cdn = [h for _m, p, h in registry.requests if p.startswith("/cdn/")]
    assert cdn and all("authorization" not in h for h in cdn)
    assert all(h["host"].startswith("localhost:") for h in cdn)
    assert any(h.get("authorization") == "Bearer secret-token" for _m, p, h in registry.requests
               if "/manifests/" in p)
