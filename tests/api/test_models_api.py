"""Model management through a real server: the official client and raw HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import ollama
import pytest

from ggufs import write_tiny_gguf
from serving import RunningServer, run_server
from skyllama import OLLAMA_COMPAT_VERSION
from skyllama.manifest import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
)


def upload(client: ollama.Client, path: Path) -> str:
    return client.create_blob(path)


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".skyllama" not in p.parts}


def test_root_and_version(server: RunningServer) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    # the Ollama release whose API skyllama follows (clients gate features on it), not an old one
    version = httpx.get(server.url + "/api/version").json()["version"]
    assert version == OLLAMA_COMPAT_VERSION
    assert tuple(int(p) for p in version.split(".")) >= (0, 13, 3)  # /v1/responses' release, at least


def test_version_is_a_setting(models_dir: Path) -> None:
    with run_server(models_dir, api_version="0.12.11") as running:
        assert httpx.get(running.url + "/api/version").json() == {"version": "0.12.11"}


def test_official_client_create_list_show_copy_delete(server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=server.url)
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    digest = upload(client, gguf)
    assert digest == "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    events = list(client.create(model="tiny", files={"tiny.gguf": digest}, template="{{ .Prompt }}",
                                system="Be brief.", parameters={"temperature": 0.3, "stop": ["<end>"]},
                                stream=True))
    statuses = [e.status for e in events]
    assert statuses[0] == "parsing GGUF" and statuses[-2:] == ["writing manifest", "success"]
    assert any(s and s.startswith("creating new layer sha256:") for s in statuses)

    listed = client.list().models
    assert [m.model for m in listed] == ["tiny:latest"]
    assert listed[0].details.family == "llama" and listed[0].details.quantization_level == "F32"

    shown = client.show("tiny")
    assert shown.template == "{{ .Prompt }}" and "\nSYSTEM Be brief.\n" in (shown.modelfile or "")
    assert httpx.post(server.url + "/api/show", json={"model": "tiny"}).json()["system"] == "Be brief."
    assert "temperature" in (shown.parameters or "") and shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities == ["completion"]
    assert "FROM @sha256:" in (shown.modelfile or "") and str(server.settings.models) not in (shown.modelfile or "")

    assert client.copy("tiny", "me/tiny-copy:v2").status == "success"
    assert sorted(m.model for m in client.list().models) == ["me/tiny-copy:v2", "tiny:latest"]
    assert client.delete("tiny").status == "success"
    assert [m.model for m in client.list().models] == ["me/tiny-copy:v2"]
    # the copy shares every blob: deleting the original removed none of them
    assert client.show("me/tiny-copy:v2").modelinfo["general.architecture"] == "llama"
    client.delete("me/tiny-copy:v2")
    assert client.list().models == []
    assert not list((server.settings.models / "blobs").iterdir())  # unreferenced blobs pruned


def test_layout_is_ollamas(server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=server.url)
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    digest = upload(client, gguf)
    client.create(model="me/layout:v1", files={"m.gguf": digest}, template="T", system="S", parameters={"top_k": 5})
    root = server.settings.models
    manifest_path = root / "manifests" / "registry.ollama.ai" / "me" / "layout" / "v1"
    doc = json.loads(manifest_path.read_bytes())
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == MANIFEST_MEDIA_TYPE
    assert doc["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert [layer["mediaType"] for layer in doc["layers"]] == [MEDIA_MODEL, MEDIA_TEMPLATE, MEDIA_SYSTEM, MEDIA_PARAMS]
    for layer in [doc["config"], *doc["layers"]]:
        blob = root / "blobs" / layer["digest"].replace(":", "-")
        assert blob.is_file() and blob.stat().st_size == layer["size"]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
    assert json.loads((root / "blobs" / doc["layers"][3]["digest"].replace(":", "-")).read_bytes()) == {"top_k": 5}
    config = json.loads((root / "blobs" / doc["config"]["digest"].replace(":", "-")).read_bytes())
    assert config["model_format"] == "gguf" and config["rootfs"]["type"] == "layers"
    expected = {"manifests/registry.ollama.ai/me/layout/v1"} | {
        "blobs/" + layer["digest"].replace(":", "-") for layer in [doc["config"], *doc["layers"]]}
    assert files_in(root) == expected


def test_reads_a_folder_written_by_ollama(models_dir: Path, tmp_path: Path) -> None:
    """A manifest laid down by hand exactly as Ollama writes one is served."""
    from serving import run_server

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    blobs = models_dir / "blobs"
    blobs.mkdir()
    model_hex = hashlib.sha256(gguf).hexdigest()
    (blobs / f"sha256-{model_hex}").write_bytes(gguf)
    config = b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"544","file_type":"F32","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_hex = hashlib.sha256(config).hexdigest()
    (blobs / f"sha256-{config_hex}").write_bytes(config)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": f"sha256:{config_hex}", "size": len(config)},
                "layers": [{"mediaType": MEDIA_MODEL, "digest": f"sha256:{model_hex}", "size": len(gguf)}]}
    path = models_dir / "manifests" / "registry.ollama.ai" / "library" / "handmade" / "latest"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(manifest))
    with run_server(models_dir) as server:
        client = ollama.Client(host=server.url)
        assert [m.model for m in client.list().models] == ["handmade:latest"]
        assert client.show("HandMade").details.parameter_size == "544"


def test_modelfile_form_and_from_base(server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=server.url)
    digest = upload(client, write_tiny_gguf(tmp_path / "tiny.gguf"))
    r = httpx.post(server.url + "/api/create", json={
        "model": "base", "modelfile": f"FROM @{digest}\nPARAMETER temperature 0.1\nSYSTEM base system\n",
        "stream": False})
    assert r.status_code == 200 and r.json() == {"status": "success"}
    r = httpx.post(server.url + "/api/create", json={
        "name": "mario", "modelfile": "FROM base\nSYSTEM You are Mario.\nPARAMETER num_ctx 1024", "stream": False})
    assert r.status_code == 200, r.text
    shown = httpx.post(server.url + "/api/show", json={"model": "mario"}).json()
    assert shown["system"] == "You are Mario."
    assert "temperature" in shown["parameters"] and "num_ctx" in shown["parameters"]


def test_real_demo_gguf_through_official_client(server: RunningServer) -> None:
    from skyllama.demo import smollm2_gguf

    client = ollama.Client(host=server.url)
    digest = client.create_blob(smollm2_gguf())
    # posting the same blob again answers 200 without reading the body
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=b"ignored").status_code == 200
    client.create(model="smol", files={"smol.gguf": digest})
    shown = client.show("smol")
    assert shown.details.family == "llama" and shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["tokenizer.ggml.tokens"] is None  # big arrays are not sent


# -- error cases through raw HTTP -------------------------------------------------------------


def nothing_written(server: RunningServer) -> bool:
    return files_in(server.settings.models) == set()


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b/c/d/e", "-bad", "x" * 100, "ns.dot/m", "a:b:c"])
def test_invalid_names_are_400_and_write_nothing(server: RunningServer, tmp_path: Path, name: str) -> None:
    for method, path, body in [
        ("POST", "/api/show", {"model": name}),
        ("POST", "/api/create", {"model": name, "from": "x"}),
        ("POST", "/api/copy", {"source": name, "destination": "ok"}),
        ("DELETE", "/api/delete", {"model": name}),
    ]:
        r = httpx.request(method, server.url + path, json=body)
        assert r.status_code == 400, (path, r.text)
        assert "error" in r.json()
    assert nothing_written(server)


def test_copy_into_invalid_name_is_400(server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=server.url)
    digest = upload(client, write_tiny_gguf(tmp_path / "tiny.gguf"))
    client.create(model="src", files={"t.gguf": digest})
    before = files_in(server.settings.models)
    r = httpx.post(server.url + "/api/copy", json={"source": "src", "destination": "../../etc/x"})
    assert r.status_code == 400 and files_in(server.settings.models) == before


@pytest.mark.parametrize("path,body", [
    ("/api/show", {"model": "missing"}),
    ("/api/copy", {"source": "missing", "destination": "other"}),
])
def test_unknown_model_is_404(server: RunningServer, path: str, body: dict[str, str]) -> None:
    r = httpx.post(server.url + path, json=body)
    assert r.status_code == 404 and "not found" in r.json()["error"]


def test_delete_unknown_is_404(server: RunningServer) -> None:
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": "missing"})
    assert r.status_code == 404 and r.json() == {"error": "model 'missing' not found"}


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"model": 5}', b""])
def test_malformed_json_is_400(server: RunningServer, body: bytes) -> None:
    for path in ("/api/show", "/api/create", "/api/copy"):
        r = httpx.post(server.url + path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and isinstance(r.json()["error"], str), (path, body, r.text)


def test_curl_style_form_content_type_is_read_as_json(server: RunningServer) -> None:
    r = httpx.post(server.url + "/api/show", content=b'{"model": "nope"}',
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 404


HEX = hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("digest", [
    "sha256:../x", "sha256:abc", f"sha256:{HEX.upper()}", f"sha512:{HEX}", f"sha256:{HEX}00", "sha256-", "x",
    f"sha256:{HEX[:-2]}%2F", "sha256:..%2F..%2Fetc%2Fpasswd",
])
def test_bad_digests_are_400(server: RunningServer, digest: str) -> None:
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 400
    r = httpx.post(f"{server.url}/api/blobs/{digest}", content=b"hello")
    assert r.status_code == 400 and r.json()["error"] == "invalid digest format"
    assert nothing_written(server)


def test_blob_upload_head_and_mismatch(server: RunningServer) -> None:
    url = f"{server.url}/api/blobs/sha256:{HEX}"
    assert httpx.head(url).status_code == 404
    r = httpx.post(url, content=b"not hello")
    assert r.status_code == 400 and r.json()["error"].startswith("digest mismatch")
    assert nothing_written(server)  # nothing kept, not even a partial file
    assert httpx.post(url, content=b"hello").status_code == 201
    assert httpx.post(url, content=b"hello").status_code == 200
    assert httpx.head(url).status_code == 200
    assert (server.settings.models / "blobs" / f"sha256-{HEX}").read_bytes() == b"hello"


def test_blob_upload_is_streamed(server: RunningServer) -> None:
    data = bytes(range(256)) * 40000  # 10 MB sent in chunks without a Content-Length
    digest = hashlib.sha256(data).hexdigest()

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = httpx.post(f"{server.url}/api/blobs/sha256:{digest}", content=chunks())
    assert r.status_code == 201
    assert (server.settings.models / "blobs" / f"sha256-{digest}").stat().st_size == len(data)


def test_create_errors(server: RunningServer) -> None:
    missing = "sha256:" + "0" * 64
    cases = [
        ({"model": "m"}, "neither 'from' or 'files' was specified"),
        ({"model": "m", "files": {"m.gguf": missing}}, "not found"),
        ({"model": "m", "files": {"../../evil.gguf": missing}}, "file name"),
        ({"model": "m", "files": {"/abs.gguf": missing}}, "file name"),
        ({"model": "m", "files": {"m.gguf": "sha256:../x"}}, "invalid digest"),
        ({"model": "m", "path": "/etc/passwd"}, "path"),
        ({"model": "m", "from": "/etc/passwd"}, "names a file"),
        ({"model": "m", "from": "no-such-base"}, "not found"),
        ({"model": "m", "modelfile": "FROM ./model.gguf"}, "names a file"),
        ({"model": "m", "from": "x", "parameters": {"bogus": 1}}, "unknown parameter"),
    ]
    for body, message in cases:
        r = httpx.post(server.url + "/api/create", json=body)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["error"], (body, r.json())
    assert nothing_written(server)


def test_create_from_corrupt_gguf_is_400(server: RunningServer) -> None:
    data = b"GGUF" + b"\xff" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    r = httpx.post(server.url + "/api/create", json={"model": "bad", "files": {"bad.gguf": digest}})
    assert r.status_code == 400 and "invalid GGUF" in r.json()["error"]
    assert not (server.settings.models / "manifests" / "registry.ollama.ai").exists()


def test_unknown_path_and_method(server: RunningServer) -> None:
    r = httpx.get(server.url + "/api/nope")
    assert r.status_code == 404 and r.text == "404 page not found"
    assert httpx.get(server.url + "/api/create").status_code == 405


def test_body_too_large_is_413(models_dir: Path) -> None:
    from serving import run_server

    with run_server(models_dir, max_request_bytes=4096) as server:
        r = httpx.post(server.url + "/api/show", content=b'{"model": "' + b"x" * 10000 + b'"}')
        assert r.status_code == 413 and "too large" in r.json()["error"]
