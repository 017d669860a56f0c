"""T-34 CSRF: with auth off (the loopback default), a browser page on an origin that is not allowed
gets 403 on every method (simple requests included) and changes nothing; allowed origins keep
working with CORS headers; a CORS-"simple" body (text/plain, form-encoded, multipart), which a page
may send anywhere without a preflight, is read as JSON only from a request no page sent (curl
``-d``), except when OLLAMA_ORIGINS is ``*``. All through a real server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ggufs import write_tiny_gguf
from serving import RunningServer, run_server
from skyllama.http.origins import OriginCheckMiddleware, origin_regex

SIMPLE_TYPES = ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


def _with_model(server: RunningServer, tmp_path: Path) -> None:
    data = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
    server.runtime.blobs.put_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(server.url + "/api/create", json={"model": "tiny", "files": {"t.gguf": digest}, "stream": False})
    assert r.status_code == 200, r.text


def _names(server: RunningServer) -> set[str]:
    return {m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]}


@pytest.fixture
def open_server(models_dir: Path, tmp_path: Path) -> Iterator[RunningServer]:
    """Auth off (loopback default), one model ``tiny:latest``."""
    with run_server(models_dir) as server:
        assert server.settings.auth_enabled is False
        _with_model(server, tmp_path)
        yield server


def _as_page(server: RunningServer, method: str, path: str, origin: str, body: dict | None = None,
             content_type: str = "text/plain;charset=UTF-8", **headers: str) -> httpx.Response:
    """A request as a browser page sends it without a preflight: a text/plain body and its Origin."""
    content = json.dumps(body).encode() if body is not None else None
    all_headers = {"Origin": origin, **headers}
    if content is not None:
        all_headers["Content-Type"] = content_type
    return httpx.request(method, server.url + path, content=content, headers=all_headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost.evil.example",
                                    "http://127.0.0.1.nip.io:11434"])
def test_disallowed_origins_get_403_on_every_method_and_change_nothing(open_server: RunningServer,
                                                                       origin: str) -> None:
    before = _names(open_server)
    attempts = [
        ("GET", "/api/tags", None), ("HEAD", "/", None), ("GET", "/api/version", None),
        ("POST", "/api/create", {"model": "made", "from": "tiny", "stream": False}),
        ("POST", "/api/copy", {"source": "tiny", "destination": "copied"}),
        ("DELETE", "/api/delete", {"model": "tiny"}),
        ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "context": [-1]}),
    ]
    for method, path, body in attempts:
        r = _as_page(open_server, method, path, origin, body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert method == "HEAD" or "origin" in r.json()["error"]
        assert r.headers.get("access-control-allow-origin") is None
    pre = httpx.options(open_server.url + "/api/copy", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 403 and pre.headers.get("access-control-allow-origin") is None
    assert _names(open_server) == before == {"tiny:latest"}  # nothing created, copied or deleted


def test_a_second_origin_header_cannot_smuggle_a_page_in(open_server: RunningServer) -> None:
    for pair in (["http://localhost:3000", "https://evil.example"], ["https://evil.example", "http://localhost:3000"]):
        r = httpx.post(open_server.url + "/api/copy", json={"source": "tiny", "destination": "copied"},
                       headers=[("Origin", pair[0]), ("Origin", pair[1])])
        assert r.status_code == 403
    assert _names(open_server) == {"tiny:latest"}


def test_the_origin_check_runs_before_auth(models_dir: Path) -> None:
    with run_server(models_dir, auth="on") as server:
        assert httpx.get(server.url + "/api/tags").status_code == 401
        r = httpx.get(server.url + "/api/tags", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "error" in r.json()


@pytest.mark.parametrize("origin", ["http://localhost:3000", "https://127.0.0.1", "app://obsidian.md",
                                    "vscode-webview://abc", "file://"])
def test_allowed_origins_work_with_cors_headers(open_server: RunningServer, origin: str) -> None:
    pre = httpx.options(open_server.url + "/api/copy", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == origin  # gin-contrib/cors
    r = httpx.post(open_server.url + "/api/copy", json={"source": "tiny", "destination": "copied"},
                   headers={"Origin": origin})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    tags = httpx.get(open_server.url + "/api/tags", headers={"Origin": origin})
    assert tags.status_code == 200 and tags.headers["access-control-allow-origin"] == origin
    assert "copied:latest" in _names(open_server)


def test_ollama_origins_adds_origins_and_can_allow_null(models_dir: Path) -> None:
    with run_server(models_dir, origins="https://*.example.com,https://app.test,null") as server:
        for origin, status in [("https://a.example.com", 200), ("https://app.test", 200), ("null", 200),
                               ("http://localhost:8080", 200), ("https://example.org", 403),
                               ("https://app.test.evil.example", 403)]:
            r = httpx.get(server.url + "/api/tags", headers={"Origin": origin})
            assert r.status_code == status, origin
            assert (r.headers.get("access-control-allow-origin") == origin) is (status == 200), origin


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("page", [{"Origin": "http://localhost:3000"},
                                  {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
                                  {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_simple_bodies_from_pages_are_415_and_change_nothing(open_server: RunningServer, content_type: str,
                                                            page: dict[str, str]) -> None:
    # even an allowed origin: a page that means it sends application/json (and passes the preflight)
    body = json.dumps({"source": "tiny", "destination": "copied"})
    r = httpx.post(open_server.url + "/api/copy", content=body, headers={"Content-Type": content_type, **page})
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["error"]
    r = httpx.request("DELETE", open_server.url + "/api/delete", content=json.dumps({"model": "tiny"}),
                      headers={"Content-Type": content_type, **page})
    assert r.status_code == 415
    assert _names(open_server) == {"tiny:latest"}


@pytest.mark.parametrize("fetch_site", [None, "none", "same-origin", "SAME-ORIGIN"])
@pytest.mark.parametrize("content_type", [*SIMPLE_TYPES, None, "application/json", "application/vnd.api+json"])
def test_curl_d_and_sdk_bodies_are_still_read_as_json(open_server: RunningServer, fetch_site: str | None,
                                                     content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if fetch_site:
        headers["Sec-Fetch-Site"] = fetch_site
    r = httpx.post(open_server.url + "/api/copy", content=json.dumps({"source": "tiny", "destination": "copied"}),
                   headers=headers)
    assert r.status_code == 200, r.text
    assert "copied:latest" in _names(open_server)


def test_blob_uploads_keep_their_octet_stream_bodies(open_server: RunningServer) -> None:
    data = b"blob bytes" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    for headers in ({}, {"Origin": "http://localhost:3000"}):
        r = httpx.post(f"{open_server.url}/api/blobs/{digest}", content=data,
                       headers={"Content-Type": "application/octet-stream", **headers})
        assert r.status_code in (200, 201), r.text


def test_wildcard_origins_accept_simple_bodies_from_any_page(models_dir: Path, tmp_path: Path) -> None:
    # OLLAMA_ORIGINS=* lets every page through the preflight with a JSON body anyway, so refusing
    # its text/plain twin protects nothing; it is accepted, as Ollama does
    with run_server(models_dir, origins="*") as server:
        _with_model(server, tmp_path)
        r = _as_page(server, "POST", "/api/copy", "https://any.example", {"source": "tiny", "destination": "copied"},
                     **{"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        assert httpx.get(server.url + "/api/tags", headers={"Origin": "null"}).status_code == 200
        assert "copied:latest" in _names(server)


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("https://llm.corp.example", "llm.corp.example", True),  # same-origin: the server's own /docs page
    ("http://LLM.corp.example:8080", "llm.corp.example:8080", True),
    ("https://llm.corp.example", "other.example", False),
    ("https://llm.corp.example:444", "llm.corp.example", False),
    ("null", "", False),
    ("", "", False),
])
def test_same_origin_requests_pass(origin: str, host: str, allowed: bool) -> None:
    regex, wildcard = origin_regex("")
    check = OriginCheckMiddleware(app=None, regex=regex, wildcard=wildcard)  # type: ignore[arg-type]
    assert check.allows(origin, host) is allowed
