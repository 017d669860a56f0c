"""T-22 GC safety: ``services/models/gc.py`` never deletes a referenced, in-flight (grace period) or
out-of-prefix blob, refuses to run while any manifest is unreadable, and deleting model A keeps
the layers B shares with it. Runs over the local folder and over S3 (moto)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from faults import BUCKET, PREFIX, aws_stores, moto_aws

from ggufs import write_tiny_gguf
from skyllama.adapters.local.blobs import LocalBlobStore
from skyllama.adapters.local.manifests import LocalManifestStore
from skyllama.adapters.local.sqlite_state import SqliteStateStore
from skyllama.composition import build_runtime
from skyllama.digests import Digest
from skyllama.http.app import create_app
from skyllama.manifest import CONFIG_MEDIA_TYPE, MEDIA_MODEL, Layer, Manifest
from skyllama.names import ModelName
from skyllama.services.models.gc import GCRefused, collect_garbage
from skyllama.settings import Settings

GRACE = 600.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture(params=["local", "aws"])
def stores(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    clock = Clock()
    if request.param == "local":
        state = SqliteStateStore(tmp_path / "state.db", clock=clock)
        yield LocalBlobStore(tmp_path / "m"), LocalManifestStore(tmp_path / "m"), state, clock, None
        state.close()
        return
    with moto_aws(monkeypatch):
        s3, blobs, manifests, state = aws_stores(tmp_path / "cache", clock)
        yield blobs, manifests, state, clock, s3


def model(blobs, manifests, name: str, *payloads: bytes) -> list[Digest]:
    digests = [blobs.put_bytes(p) for p in payloads]
    config = blobs.put_bytes(b'{"model_format":"gguf"}' + name.encode())
    m = Manifest(config=Layer(CONFIG_MEDIA_TYPE, config, 10),
                 layers=tuple(Layer(MEDIA_MODEL, d, 1) for d in digests))
    manifests.put(ModelName.parse(name), m.to_bytes())
    return [config, *digests]


def gc(stores: tuple, **kw: object):
    blobs, manifests, state, clock, _ = stores
    return collect_garbage(blobs, manifests, state, clock=clock, grace_seconds=GRACE, **kw)


def test_referenced_blobs_survive_and_orphans_wait_out_the_grace_period(stores: tuple) -> None:
    blobs, manifests, _state, clock, _ = stores
    used = model(blobs, manifests, "a:v1", b"weights-a", b"shared")
    orphan = blobs.put_bytes(b"orphan")
    first = gc(stores)
    assert first.deleted == [] and first.waiting == [orphan]  # just seen: marked, not deleted
    clock.t += GRACE - 1
    assert gc(stores).deleted == []
    clock.t += 2
    assert gc(stores).deleted == [orphan]
    assert set(blobs.list()) == set(used)


def test_in_flight_blobs_and_rescued_blobs_are_kept(stores: tuple) -> None:
    blobs, manifests, _state, clock, _ = stores
    uploading = blobs.put_bytes(b"upload for a create in progress")
    later_used = blobs.put_bytes(b"used by a manifest written after the mark")
    gc(stores)
    clock.t += GRACE + 1
    model(blobs, manifests, "late:v1", b"used by a manifest written after the mark")
    report = gc(stores, in_flight=[uploading])
    assert report.deleted == [] and report.in_flight == [uploading]
    assert blobs.exists(uploading) and blobs.exists(later_used)


def test_refuses_to_run_while_a_manifest_is_unreadable(stores: tuple, tmp_path: Path) -> None:
    blobs, manifests, state, clock, s3 = stores
    model(blobs, manifests, "a:v1", b"a")
    orphan = blobs.put_bytes(b"orphan")
    gc(stores)
    clock.t += GRACE + 1
    bad = ModelName.parse("broken:v1")
    manifests.put(bad, b"{not json")
    with pytest.raises(GCRefused):
        gc(stores)
    manifests.delete(bad)
    if s3 is None:
        stray = tmp_path / "m" / "manifests" / "too-shallow"
        stray.write_text("{}")
    else:
        s3.put_object(Bucket=BUCKET, Key=PREFIX + "manifests/registry.ollama.ai/lib/x/\u00ff bad", Body=b"{}")
    with pytest.raises(GCRefused):
        gc(stores)
    assert blobs.exists(orphan)


def test_nothing_outside_blobs_sha256_is_ever_touched(stores: tuple, tmp_path: Path) -> None:
    blobs, manifests, state, clock, s3 = stores
    name = "sha256-" + hashlib.sha256(b"foreign").hexdigest()
    if s3 is None:
        folder = tmp_path / "m" / "blobs"
        foreign = [folder / ".partial-crashed", folder / (name.upper()), folder / "notes.txt",
                   folder / (name + ".bak"), tmp_path / "m" / name]
        for path in foreign:
            path.write_bytes(b"x")
    else:
        keys = ["other/blobs/" + name, PREFIX + "uploads/abc", PREFIX + "blobs/" + name.upper(),
                PREFIX + "blobs/notes.txt", name, PREFIX + name]
        for key in keys:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    for _ in range(2):
        gc(stores)
        clock.t += GRACE + 1
    if s3 is None:
        assert all(p.exists() for p in foreign)
    else:
        left = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
        assert set(keys) <= left


def test_deleting_a_keeps_bs_shared_layers(tmp_path: Path) -> None:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, inference=False)
    data = write_tiny_gguf(tmp_path / "t.gguf", seed=2).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
        assert c.post(f"/api/blobs/{digest}", content=data).status_code == 201
        for name, system in (("a", "A"), ("b", "B")):
            r = c.post("/api/create", json={"model": name, "files": {"m.gguf": digest}, "system": system,
                                            "stream": False})
            assert r.status_code == 200
        assert c.request("DELETE", "/api/delete", json={"model": "a"}).status_code == 200
        for _ in range(2):
            collect_garbage(runtime.blobs, runtime.manifests, runtime.state, grace_seconds=0)
        assert c.post("/api/show", json={"model": "b"}).status_code == 200
        assert runtime.blobs.exists(Digest.parse(digest))
    runtime.close()
