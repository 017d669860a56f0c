"""T-36: no 500 from edge inputs. Against a real server (``run_server``, the fake engine), each
of these is a 400 with ``{"error": ...}`` and the server keeps answering:

- a model name whose host is longer than a file name may be (256+ characters: ``File name too
  long`` in the manifest store), on every route that takes a name, while 255 still works;
- a lone surrogate (JSON ``"\\ud800"``) anywhere in a request body, on every JSON route;
- a registry host in a non-canonical IPv4 notation (``0177.0.0.1``, ``0x7f.1``, ``127.1``,
  ``2130706433``...) in a pull or push name, and as a registry redirect's target; canonical
  loopback and private addresses stay refused by the outbound policy (403, T-07);
- a GGUF with no tensors, or a tensor with no dimensions, given to ``/api/create``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from starlette.responses import Response

from fake_registry import FakeRegistry, RecordingTransport, pull, serve_registry
from ggufs import write_tiny_gguf
from serving import RunningServer, run_server
from skyllama.engine.fake import FakeEngine
from skyllama.services.registry.outbound import Outbound, OutboundPolicy
from skyllama.settings import Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RecordingTransport, str]]:
    """A server with one model ``tiny`` and its weights' digest; outbound calls recorded."""
    folder = tmp_path_factory.mktemp("t36")
    recorder = RecordingTransport()
    with run_server(folder / "models", engine=FakeEngine(), outbound=recorded(folder / "models", recorder)) as server:
        client = ollama.Client(host=server.url)
        digest = client.create_blob(write_tiny_gguf(folder / "tiny.gguf"))
        assert list(client.create(model="tiny", files={"tiny.gguf": digest}, stream=True))[-1].status == "success"
        yield server, recorder, digest


def recorded(models: Path, recorder: RecordingTransport, **settings: object) -> Outbound:
    """The outbound way of a server over ``models`` with these settings, dialling through ``recorder``."""
    policy = OutboundPolicy.from_settings(Settings.from_env({}, models=models, **settings))
    return Outbound(policy, inner=recorder)


def send(server: RunningServer, method: str, path: str, raw: str) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", content=raw.encode(),
                         headers={"Content-Type": "application/json"}, timeout=30)


def refused_400(response: httpx.Response, server: RunningServer, *words: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    error = response.json()["error"]
    message = error if isinstance(error, str) else error["message"]  # /v1/ routes: OpenAI's / Anthropic's shape
    for word in words:
        assert word in message, message
    assert httpx.get(f"{server.url}/api/version", timeout=5).status_code == 200
    return str(message)


def name_bodies(name: str, digest: str) -> list[tuple[str, str, dict[str, object]]]:
    """Every route that takes a model name, with ``name`` in it."""
    return [("POST", "/api/create", {"model": name, "files": {"tiny.gguf": digest}, "stream": False}),
            ("POST", "/api/copy", {"source": "tiny", "destination": name}),
            ("POST", "/api/pull", {"model": name, "stream": False}),
            ("POST", "/api/push", {"model": name, "stream": False}),
            ("POST", "/api/show", {"model": name}),
            ("DELETE", "/api/delete", {"model": name})]


@pytest.mark.parametrize("part", ["host", "namespace", "model", "tag"])
def test_overlong_name_parts_are_400_on_every_route(served: tuple[RunningServer, RecordingTransport, str],
                                                   part: str) -> None:
    server, recorder, digest = served
    parts = {"host": "example.com", "namespace": "ns", "model": "m", "tag": "t"}
    parts[part] = "h" * (256 if part == "host" else 81)
    name = f"{parts['host']}/{parts['namespace']}/{parts['model']}:{parts['tag']}"
    for method, path, body in name_bodies(name, digest):
        refused_400(send(server, method, path, json.dumps(body)), server, "invalid model name")
    assert recorder.dialed == []
    assert not [p for p in (server.settings.models / "manifests").rglob("*") if "hhhh" in p.name]


def test_longest_host_is_stored_copied_shown_and_deleted(served: tuple[RunningServer, RecordingTransport, str]) -> None:
    """255 characters, the longest file name, still works end to end (the limit is not stricter
    than the disk)."""
    server, _recorder, digest = served
    name, copy = "h" * 255 + "/ns/m:t", "g" * 255 + "/ns/m:t"
    client = ollama.Client(host=server.url)
    assert list(client.create(model=name, files={"tiny.gguf": digest}, stream=True))[-1].status == "success"
    client.copy(name, copy)
    assert client.show(copy).modelfile
    client.delete(name)
    client.delete(copy)


SURROGATE = '"hi\\ud800"'  # JSON text: a lone high surrogate, as the escape a client sends
SURROGATE_BODIES = [
    ("POST", "/api/generate", '{"model":"tiny","prompt":%s,"stream":false}'),
    ("POST", "/api/generate", '{"model":"tiny","prompt":"x","system":%s,"stream":false}'),
    ("POST", "/api/generate", '{"model":"tiny","prompt":"x","options":{"stop":[%s]},"stream":false}'),
    ("POST", "/api/generate", '{"model":"tiny","prompt":"x","format":{"type":"object","properties":{%s:{}}}}'),
    ("POST", "/api/chat", '{"model":"tiny","messages":[{"role":"user","content":%s}],"stream":false}'),
    ("POST", "/api/chat", '{"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",'
                          '"function":{"name":"f","description":%s}}],"stream":false}'),
    ("POST", "/api/embed", '{"model":"tiny","input":[%s]}'),
    ("POST", "/api/embeddings", '{"model":"tiny","prompt":%s}'),
    ("POST", "/api/create", '{"model":"t2","from":"tiny","template":%s}'),
    ("POST", "/api/create", '{"model":"t2","from":"tiny","system":%s}'),
    ("POST", "/api/create", '{"model":"t2","from":"tiny","messages":[{"role":"user","content":%s}]}'),
    ("POST", "/api/create", '{"model":"t2","modelfile":"FROM tiny\\nSYSTEM hi\\ud800"}'),
    ("POST", "/api/show", '{"model":%s}'),
    ("POST", "/api/show", '{"model":"tiny","system":%s}'),
    ("POST", "/api/copy", '{"source":"tiny","destination":%s}'),
    ("DELETE", "/api/delete", '{"model":%s}'),
    ("POST", "/api/pull", '{"model":%s,"stream":false}'),
    ("POST", "/api/push", '{"model":%s,"stream":false}'),
    ("POST", "/v1/chat/completions", '{"model":"tiny","messages":[{"role":"user","content":%s}]}'),
    ("POST", "/v1/chat/completions", '{"model":"tiny","messages":[{"role":"user","content":[{"type":"text",'
                                     '"text":%s}]}],"stream":true}'),
    ("POST", "/v1/completions", '{"model":"tiny","prompt":%s}'),
    ("POST", "/v1/embeddings", '{"model":"tiny","input":%s}'),
    ("POST", "/v1/messages", '{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":%s}]}'),
    ("POST", "/v1/messages", '{"model":"tiny","max_tokens":5,"system":%s,"messages":[{"role":"user","content":"x"}]}'),
]


@pytest.mark.parametrize(("method", "path", "template"), SURROGATE_BODIES)
def test_lone_surrogates_are_400(served: tuple[RunningServer, RecordingTransport, str], method: str, path: str,
                                 template: str) -> None:
    server, _recorder, _digest = served
    response = send(server, method, path, template.replace("%s", SURROGATE, 1))
    refused_400(response, server, "lone surrogate", "\\ud800")
    assert httpx.post(f"{server.url}/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False},
                      timeout=30).status_code == 200
    assert not [m for m in ollama.Client(host=server.url).list().models if (m.model or "").startswith("t2")]


def test_paired_surrogates_and_other_unicode_are_fine(served: tuple[RunningServer, RecordingTransport, str]) -> None:
    server, _recorder, _digest = served
    for text in ('"\\ud83d\\ude00 smile"', '"caf\\u00e9 \u4e2d\u6587"'):  # an escaped emoji pair; raw UTF-8
        r = send(server, "POST", "/api/generate", '{"model":"tiny","prompt":' + text + ',"stream":false}')
        assert r.status_code == 200, r.text


ODD_HOSTS = ["0177.0.0.1", "0x7f.1", "0x7f000001", "2130706433", "127.1", "127.0.0.01", "0177.1:11434",
             "0", "999.1.1.1", "1.2.3.4.5", "10.0.0.1.0x0"]


@pytest.mark.parametrize("host", ODD_HOSTS)
def test_non_canonical_ipv4_hosts_are_400_for_pull_and_push(served: tuple[RunningServer, RecordingTransport, str],
                                                            host: str) -> None:
    server, recorder, digest = served
    name = f"{host}/ns/m:t"
    client = ollama.Client(host=server.url)
    assert list(client.create(model=name, files={"tiny.gguf": digest}, stream=True))[-1].status == "success"
    for path in ("/api/pull", "/api/push"):
        for insecure in (True, False):
            body = json.dumps({"model": name, "insecure": insecure, "stream": False})
            refused_400(send(server, "POST", path, body), server, "not a canonical address")
    client.delete(name)
    assert recorder.dialed == []


@pytest.mark.parametrize("name", ["127.0.0.1/x/y", "10.0.0.1/x/y", "169.254.169.254/x/y"])
def test_canonical_forbidden_addresses_stay_refused_by_the_policy(
        served: tuple[RunningServer, RecordingTransport, str], name: str) -> None:
    server, recorder, _digest = served
    r = send(server, "POST", "/api/pull", json.dumps({"model": name, "insecure": True}))
    assert r.status_code == 403 and "refusing" in r.json()["error"], r.text
    assert recorder.dialed == []


@pytest.fixture
def loopback_puller(tmp_path: Path) -> Iterator[tuple[RunningServer, RecordingTransport]]:
    folder = tmp_path / "puller"
    folder.mkdir()
    recorder = RecordingTransport()
    with run_server(folder, registry_allow_loopback=True,
                    outbound=recorded(folder, recorder, registry_allow_loopback=True)) as server:
        yield server, recorder


@pytest.mark.parametrize("target", ["http://127.1:{port}/x", "http://2130706433:{port}/x",
                                    "http://0x7f.0.0.1:{port}/x", "http://0177.0.0.1:{port}/x"])
def test_redirect_to_a_non_canonical_host_is_refused(loopback_puller: tuple[RunningServer, RecordingTransport],
                                                     target: str) -> None:
    """Even with loopback allowed (the registry is on 127.0.0.1), a redirect whose host is a
    loopback address in another notation is refused before it is dialled. (A dotted quad with
    a leading zero, ``0177.0.0.1``, is already refused by httpx when it reads the Location
    header: a 502 "registry request failed", never dialled either.)"""
    server, recorder = loopback_puller
    with serve_registry(FakeRegistry()) as registry:
        registry.publish(b'{"model_format":"gguf"}', [os.urandom(5000)])
        port = registry.url.rsplit(":", 1)[1]
        location = target.format(port=port)
        registry.hook = lambda r: Response(status_code=307, headers={"Location": location}) \
            if "/blobs/" in r.url.path else None
        r = pull(server.url, registry.url.removeprefix("http://") + "/ns/m:t")
        if "0177" in target:
            assert r.status_code == 502 and "registry request failed" in r.json()["error"], r.text
        else:
            refused_400(r, server, "not a canonical address")
        assert all(d == f"127.0.0.1:{port}" for d in recorder.dialed), recorder.dialed
    assert not [p for p in (server.settings.models / "blobs").iterdir() if p.name.startswith("sha256-")]


def _gguf(tensors: list[tuple[str, tuple[int, ...]]]) -> bytes:
    """A GGUF v3 with ``general.architecture = llama`` and these F32 tensors (data zeroed)."""
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    body = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1) + s("general.architecture") + struct.pack("<I", 8)
    body += s("llama")
    offset = 0
    for name, dims in tensors:
        body += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        body += struct.pack("<IQ", 0, offset)
        elements = 1
        for d in dims:
            elements *= d
        offset += -(-elements * 4 // 32) * 32
    return body + b"\0" * (-len(body) % 32) + b"\0" * max(offset, 64)


@pytest.mark.parametrize(("case", "tensors"), [("no tensors", []), ("no dimensions", [("w", ())]),
                                               ("zero-size dimension", [("w", (0, 4))])])
def test_degenerate_ggufs_are_400_at_create(served: tuple[RunningServer, RecordingTransport, str], tmp_path: Path,
                                            case: str, tensors: list[tuple[str, tuple[int, ...]]]) -> None:
    server, _recorder, _digest = served
    model, path = "degenerate-" + case.replace(" ", "-"), tmp_path / "degenerate.gguf"
    path.write_bytes(_gguf(tensors))
    client = ollama.Client(host=server.url)
    digest = client.create_blob(path)
    body = json.dumps({"model": model, "files": {"m.gguf": digest}, "stream": False})
    refused_400(send(server, "POST", "/api/create", body), server, "invalid GGUF file")
    assert not [m for m in client.list().models if (m.model or "").startswith(model)]
    path.write_bytes(_gguf([("w", (4, 4))]))  # the same file with one real tensor is accepted
    digest = client.create_blob(path)
    assert list(client.create(model=model, files={"m.gguf": digest}, stream=True))[-1].status == "success"
    client.delete(model)
