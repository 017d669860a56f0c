"""T-01: with auth on, every route of the app's route table is default-deny.

The test walks ``app.routes`` (every path x method, path parameters filled with plausible
values), so a route added later is covered without touching this file: no key, a wrong key and
a revoked key get 401; a key without the route's scope gets 403; a key with it gets through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.http.app import create_app
from skyllama.http.auth import flat_routes, route_methods, route_policy, route_template
from skyllama.http.policy import AUTHENTICATED, PUBLIC
from skyllama.settings import Settings

DIGEST = "sha256:" + "0" * 64
PARAM_VALUES = {"digest": DIGEST, "model": "smollm2:135m", "name": "library/smollm2", "reference": "latest",
                "asset": "js/app.js"}
# Public beyond the health checks: the web console's static files and config (http/ui.py), which
# hold no data; every API call the console makes carries a key and meets the rest of the table.
CONSOLE = {"/ui", "/ui/", "/ui/config.json", "/ui/{asset:path}"}
EXPECTED = {
    ("/", "GET"): PUBLIC, ("/", "HEAD"): PUBLIC, ("/api/version", "GET"): PUBLIC,
    ("/api/generate", "POST"): "inference", ("/api/chat", "POST"): "inference",
    ("/api/embed", "POST"): "inference", ("/api/embeddings", "POST"): "inference",
    ("/api/ps", "GET"): "inference", ("/api/tags", "GET"): "inference", ("/api/tags", "HEAD"): "inference",
    ("/api/show", "POST"): "inference", ("/api/create", "POST"): "manage", ("/api/copy", "POST"): "manage",
    ("/api/delete", "DELETE"): "manage", ("/api/blobs/{digest:path}", "HEAD"): "manage",
    ("/api/blobs/{digest:path}", "POST"): "manage", ("/api/usage", "GET"): AUTHENTICATED,
}
LACKING = {"inference": ["manage"], "manage": ["inference"], "admin": ["inference", "manage"]}


def assert_denied_body(url: str, body: dict[str, Any], message: str) -> None:
    """Each family of routes answers in the error shape its clients parse."""
    if url.startswith("/v1/messages"):  # Anthropic
        kind = {"unauthorized": "authentication_error", "forbidden": "permission_error"}[message]
        assert body["type"] == "error" and body["error"] == {"type": kind, "message": message}
    elif url.startswith("/v1/"):  # OpenAI
        assert body["error"]["message"] == message and body["error"]["type"]
    else:  # Ollama
        assert body == {"error": message}


def fill(template: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAM_VALUES.get(m.group(1), "x"), template)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "models", state_db=tmp_path / "state.db", auth="on",
                                 host="127.0.0.1:11434")
    runtime = build_runtime(settings, engine=FakeEngine())
    yield create_app(runtime)
    runtime.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        yield c


def key(app: FastAPI, *scopes: str, owner: str = "alice") -> dict[str, str]:
    secret, _record = app.state.runtime.keys.create_key(name="t", owner=owner, scopes=list(scopes))
    return {"Authorization": f"Bearer {secret}"}


def every_route(app: FastAPI) -> list[tuple[str, str, str]]:
    """``(method, template, url)`` for every route and method of the app."""
    rows = []
    for route in flat_routes(app):
        template = route_template(route)
        for method in sorted(route_methods(route)):
            rows.append((method, template, fill(template)))
    assert len(rows) >= len(EXPECTED)
    return rows


def call(client: TestClient, method: str, url: str, headers: dict[str, str] | None = None) -> int:
    body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
    return client.request(method, url, json=body, headers=headers or {}).status_code


def test_policy_table_covers_the_known_routes(app: FastAPI) -> None:
    policy = route_policy(app, app.state.runtime.settings)
    for route_key, scope in EXPECTED.items():
        assert policy[route_key] == scope, route_key
    public = {k for k, v in policy.items() if v == PUBLIC}
    assert {path for path, _m in public} <= {"/", "/api/version"} | CONSOLE
    assert {method for path, method in public if path in CONSOLE} == {"GET", "HEAD"}
    for method in ("GET", "POST", "DELETE"):
        assert policy[("/api/keys" if method != "DELETE" else "/api/keys/{key_id}", method)] == "admin"


def test_every_route_denies_without_a_valid_key(app: FastAPI, client: TestClient) -> None:
    revoked = key(app, "admin")
    record = app.state.runtime.keys.list_keys()[-1]
    app.state.runtime.keys.revoke_key(record["id"])
    policy = route_policy(app, app.state.runtime.settings)
    for method, template, url in every_route(app):
        if policy[(template, method)] == PUBLIC:
            assert call(client, method, url) < 400, (method, template)
            continue
        for headers in (None, {"Authorization": "Bearer sk-sky-wrong"}, {"Authorization": "Basic YTpi"},
                        {"Authorization": "Bearer "}, revoked):
            r = client.request(method, url, json={} if method != "GET" and method != "HEAD" else None,
                               headers=headers or {})
            assert r.status_code == 401, (method, template, headers)
            assert r.headers["www-authenticate"] == "Bearer"
            if method != "HEAD":
                assert_denied_body(url, r.json(), "unauthorized")


def test_every_route_needs_its_scope(app: FastAPI, client: TestClient) -> None:
    policy = route_policy(app, app.state.runtime.settings)
    keys = {scopes: key(app, *scopes) for scopes in (("inference",), ("manage",), ("inference", "manage"),
                                                     ("admin",))}
    for method, template, url in every_route(app):
        needed = policy[(template, method)]
        if needed in (PUBLIC, AUTHENTICATED):
            for headers in keys.values():
                assert call(client, method, url, headers) not in (401, 403), (method, template)
            continue
        lacking = keys[tuple(LACKING[needed])] if needed != "manage" else keys[("inference",)]
        r = client.request(method, url, json={} if method not in ("GET", "HEAD") else None, headers=lacking)
        assert r.status_code == 403, (method, template, needed)
        if method != "HEAD":
            assert_denied_body(url, r.json(), "forbidden")
        granted = keys[("admin",)] if needed == "admin" else keys[(needed,)]
        for headers in (granted, keys[("admin",)]):
            assert call(client, method, url, headers) not in (401, 403), (method, template, needed)


def test_a_forgotten_route_fails_closed(app: FastAPI, client: TestClient) -> None:
    @app.get("/api/experimental/new-thing")
    async def new_thing() -> dict[str, str]:
        return {"ok": "yes"}

    assert client.get("/api/experimental/new-thing").status_code == 401
    assert client.get("/api/experimental/new-thing", headers=key(app, "inference", "manage")).status_code == 403
    assert client.get("/api/experimental/new-thing", headers=key(app, "admin")).json() == {"ok": "yes"}


def test_no_bypass_by_method_slash_or_unknown_path(app: FastAPI, client: TestClient) -> None:
    inference = key(app, "inference")
    for method, url in [("HEAD", "/api/tags"), ("GET", "/api/tags/"), ("GET", "/api/blobs/" + DIGEST),
                        ("GET", "/api/generate"), ("GET", "/API/TAGS"), ("GET", "/nope"),
                        ("GET", "/v2/library/x/manifests/latest"), ("PUT", "/v2/x/blobs/uploads/1"),
                        ("POST", "//api/create"), ("GET", "/api/tags?x=1")]:
        assert client.request(method, url).status_code == 401, (method, url)
    # HEAD of a manage route is not reached through its GET twin, and unknown paths answer 404 to keys
    assert client.head("/api/blobs/" + DIGEST, headers=inference).status_code == 403
    assert client.get("/nope", headers=inference).status_code == 404
    assert client.get("/api/version").json()["version"] and client.head("/").status_code == 200


def test_cors_preflight_needs_no_key(client: TestClient) -> None:
    r = client.options("/api/chat", headers={"Origin": "http://localhost:3000",
                                             "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization"})
    # gin-contrib/cors, as Ollama: a bodiless 204
    assert r.status_code == 204 and "authorization" in r.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(("overrides", "enabled"), [
    ({}, False), ({"host": "0.0.0.0:11434"}, True), ({"host": "10.1.2.3"}, True),
    ({"host": "[::1]:11434"}, False), ({"auth": "on"}, True), ({"auth": "off", "host": "0.0.0.0"}, False),
    ({"backend": "aws"}, True),
])
def test_auth_is_on_beyond_loopback_and_in_the_cloud(overrides: dict[str, str], enabled: bool) -> None:
    assert Settings.from_env({}, **overrides).auth_enabled is enabled


def test_auth_off_changes_nothing(tmp_path: Path) -> None:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, engine=FakeEngine())
    with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
        assert c.get("/api/tags").json() == {"models": []}
        assert c.head("/api/blobs/" + DIGEST).status_code == 404
    runtime.close()
