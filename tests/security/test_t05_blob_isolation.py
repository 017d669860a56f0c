"""T-05 and T-08: one owner's private models and blobs do not exist for another owner.

No existence oracle: HEAD and POST of a blob only another owner's models reference answer as
for an absent blob, ``/api/create`` cannot reference it, and show/copy/delete/generate of
another owner's model answer 404 exactly as for a missing one. Copy and create cannot write
into another tenant's namespace (T-08).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.http.app import create_app
from skyllama.settings import Settings


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "models", state_db=tmp_path / "state.db", auth="on")
    runtime = build_runtime(settings, engine=FakeEngine())
    yield create_app(runtime)
    runtime.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        yield c


def bearer(app: FastAPI, owner: str, *scopes: str) -> dict[str, str]:
    secret, _ = app.state.runtime.keys.create_key(name=owner, owner=owner,
                                                  scopes=list(scopes or ("inference", "manage")))
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def world(app: FastAPI, client: TestClient, tmp_path: Path) -> dict[str, object]:
    """Alice uploads a GGUF and makes the private model ``secret``; Bob has a key of his own."""
    alice, bob, admin = bearer(app, "alice"), bearer(app, "bob"), bearer(app, "root", "admin")
    data = write_tiny_gguf(tmp_path / "a.gguf", seed=1).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data, headers=alice).status_code == 201
    r = client.post("/api/create", json={"model": "secret", "files": {"m.gguf": digest}, "stream": False},
                    headers=alice)
    assert r.status_code == 200, r.text
    return {"alice": alice, "bob": bob, "admin": admin, "data": data, "digest": digest}


def absent_digest(seed: bytes = b"nobody has this") -> str:
    return "sha256:" + hashlib.sha256(seed).hexdigest()


def test_head_is_no_existence_oracle(client: TestClient, world: dict) -> None:
    bob, alice = world["bob"], world["alice"]
    hidden = client.head(f"/api/blobs/{world['digest']}", headers=bob)
    missing = client.head(f"/api/blobs/{absent_digest()}", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content and hidden.headers.get("content-length") == missing.headers.get(
        "content-length")
    assert client.head(f"/api/blobs/{world['digest']}", headers=alice).status_code == 200
    assert client.head(f"/api/blobs/{world['digest']}", headers=world["admin"]).status_code == 200


def test_post_is_no_existence_oracle(client: TestClient, world: dict) -> None:
    bob = world["bob"]
    wrong = client.post(f"/api/blobs/{world['digest']}", content=b"not the bytes", headers=bob)
    other = absent_digest(b"also absent")
    wrong_new = client.post(f"/api/blobs/{other}", content=b"not the bytes", headers=bob)
    assert wrong.status_code == wrong_new.status_code == 400
    assert wrong.json()["error"].replace(world["digest"], "D") == wrong_new.json()["error"].replace(other, "D")
    assert client.head(f"/api/blobs/{world['digest']}", headers=bob).status_code == 404
    # the right bytes: answered as a new upload (201, not 200) after reading them; now Bob may use it
    assert client.post(f"/api/blobs/{world['digest']}", content=world["data"], headers=bob).status_code == 201
    assert client.head(f"/api/blobs/{world['digest']}", headers=bob).status_code == 200
    assert client.post(f"/api/blobs/{world['digest']}", content=b"", headers=world["alice"]).status_code == 200


def test_create_cannot_reference_anothers_blob(client: TestClient, world: dict) -> None:
    bob = world["bob"]
    hidden = client.post("/api/create", json={"model": "mine", "files": {"m.gguf": world["digest"]},
                                              "stream": False}, headers=bob)
    missing = client.post("/api/create", json={"model": "mine", "files": {"m.gguf": absent_digest()},
                                               "stream": False}, headers=bob)
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["error"].replace(world["digest"], "D") == missing.json()["error"].replace(
        absent_digest(), "D")
    base = client.post("/api/create", json={"model": "mine", "from": "secret", "stream": False}, headers=bob)
    assert base.status_code == 400 and base.json() == {"error": "base model 'secret' not found"}


def test_models_of_another_owner_do_not_exist(client: TestClient, world: dict) -> None:
    bob, alice = world["bob"], world["alice"]
    assert [m["name"] for m in client.get("/api/tags", headers=alice).json()["models"]] == ["secret:latest"]
    assert client.get("/api/tags", headers=bob).json() == {"models": []}
    assert len(client.get("/api/tags", headers=world["admin"]).json()["models"]) == 1
    for name in ("secret", "Secret:latest", "nothere"):
        r = client.post("/api/show", json={"model": name}, headers=bob)
        assert r.status_code == 404 and r.json() == {"error": f"model '{name}' not found"}
        r = client.request("DELETE", "/api/delete", json={"model": name}, headers=bob)
        assert r.status_code == 404 and r.json() == {"error": f"model '{name}' not found"}
        r = client.post("/api/copy", json={"source": name, "destination": "stolen"}, headers=bob)
        assert r.status_code == 404 and r.json() == {"error": f'model "{name}" not found'}
        r = client.post("/api/generate", json={"model": name, "prompt": "hi", "stream": False}, headers=bob)
        assert r.status_code == 404, r.text
    assert client.post("/api/show", json={"model": "secret"}, headers=alice).status_code == 200


def test_copy_and_create_stay_in_the_owners_namespace(client: TestClient, world: dict) -> None:
    alice, bob = world["alice"], world["bob"]
    assert client.post("/api/copy", json={"source": "secret", "destination": "alice/secret"},
                       headers=alice).status_code == 200
    assert client.post("/api/copy", json={"source": "secret", "destination": "bob/secret"},
                       headers=alice).status_code == 403
    assert [m["name"] for m in client.get("/api/tags", headers=bob).json()["models"]] == []
    assert client.post("/api/blobs/" + world["digest"], content=world["data"], headers=bob).status_code == 201
    r = client.post("/api/create", json={"model": "alice/trojan", "files": {"m.gguf": world["digest"]},
                                         "stream": False}, headers=bob)
    assert r.status_code == 403
    r = client.post("/api/create", json={"model": "secret", "files": {"m.gguf": world["digest"]},
                                         "stream": False}, headers=bob)
    assert r.status_code == 403  # the name is Alice's: Bob cannot overwrite it
    r = client.post("/api/create", json={"model": "bob/mine", "files": {"m.gguf": world["digest"]},
                                         "stream": False}, headers=bob)
    assert r.status_code == 200, r.text
    assert [m["name"] for m in client.get("/api/tags", headers=bob).json()["models"]] == ["bob/mine:latest"]
    assert client.request("DELETE", "/api/delete", json={"model": "bob/mine"}, headers=bob).status_code == 200
    assert client.request("DELETE", "/api/delete", json={"model": "secret"}, headers=alice).status_code == 200
    assert client.head("/api/blobs/" + world["digest"], headers=alice).status_code == 200  # still Alice's copy


def test_unowned_models_are_readable_but_only_admin_changes_them(app: FastAPI, client: TestClient,
                                                                  world: dict) -> None:
    creator = app.state.runtime.creator
    for _ in creator.run(creator.plan({"model": "shared", "files": {"m.gguf": world["digest"]}}, None)):
        pass  # made outside any request: the operator's model, no owner
    bob = world["bob"]
    assert client.post("/api/show", json={"model": "shared"}, headers=bob).status_code == 200
    assert client.head("/api/blobs/" + world["digest"], headers=bob).status_code == 200  # via a readable model
    assert client.request("DELETE", "/api/delete", json={"model": "shared"}, headers=bob).status_code == 403
    assert client.post("/api/copy", json={"source": "shared", "destination": "shared"},
                       headers=bob).status_code == 403
    assert client.post("/api/copy", json={"source": "shared", "destination": "bob/shared"},
                       headers=bob).status_code == 200
    assert client.request("DELETE", "/api/delete", json={"model": "shared"},
                          headers=world["admin"]).status_code == 200


def test_loaded_model_lists_show_only_readable_models(app: FastAPI, world: dict) -> None:
    from skyllama.services.access.keys import Principal

    ownership = app.state.runtime.ownership
    rows = [{"model": "secret:latest"}, {"model": "other:latest"}, {"model": "../bad"}]
    for owner, expected in (("bob", ["other:latest"]), ("alice", ["secret:latest", "other:latest"])):
        caller = Principal(owner, "k", frozenset({"inference"}))
        assert [r["model"] for r in ownership.filter_visible(caller, rows)] == expected
    assert ownership.filter_visible(None, rows) == rows  # auth off: unchanged
