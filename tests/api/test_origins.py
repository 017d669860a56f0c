"""CORS and Host-header defences (SECURITY.md T-14) through a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serving import RunningServer, run_server
from skyllama.http.origins import host_allowed


@pytest.mark.parametrize("origin", ["http://localhost:3000", "https://127.0.0.1", "app://obsidian.md",
                                    "vscode-webview://abc"])
def test_default_origins_allowed(server: RunningServer, origin: str) -> None:
    r = httpx.options(server.url + "/api/tags", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in r.headers


# What Ollama's gin-contrib/cors (v1.7.2) answers a preflight with: Ollama's header list, canonical
# and comma-joined (skyllama's own three after it), its default methods, 12 hours of max age.
OLLAMA_HEADERS = ("Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,"
                  "X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,"
                  "X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,"
                  "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout")


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/no/such/path"])
def test_preflight_is_answered_as_ollama_does(server: RunningServer, path: str) -> None:
    origin = "http://localhost:5173"
    r = httpx.options(server.url + path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "content-type,x-my-header"})
    assert r.status_code == 204 and r.content == b"" and "content-type" not in r.headers
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
    assert r.headers["access-control-allow-headers"].startswith(OLLAMA_HEADERS + ",")
    assert r.headers["access-control-max-age"] == "43200"
    assert r.headers.get_list("vary") == ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"]


def test_answers_to_pages_vary_on_origin(server: RunningServer) -> None:
    r = httpx.get(server.url + "/api/tags", headers={"Origin": "http://localhost:5173"})
    assert r.status_code == 200 and r.headers["vary"] == "Origin"
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    plain = httpx.get(server.url + "/api/tags")  # no Origin: no CORS headers at all
    assert not [k for k in plain.headers if k.startswith("access-control") or k == "vary"]


def test_wildcard_preflight(models_dir: Path) -> None:
    with run_server(models_dir, origins="*") as server:
        r = httpx.options(server.url + "/api/tags", headers={"Origin": "https://any.example",
                                                            "Access-Control-Request-Method": "GET"})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
        assert "vary" not in r.headers and r.headers["access-control-max-age"] == "43200"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null"])
def test_other_origins_are_not_reflected(server: RunningServer, origin: str) -> None:
    r = httpx.get(server.url + "/api/tags", headers={"Origin": origin})
    assert r.headers.get("access-control-allow-origin") in (None, "")
    r = httpx.options(server.url + "/api/tags", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert r.headers.get("access-control-allow-origin") in (None, "")


def test_ollama_origins_setting(models_dir: Path) -> None:
    with run_server(models_dir, origins="https://*.example.com,https://app.test") as server:
        for origin, allowed in [("https://a.example.com", True), ("https://app.test", True),
                                ("https://example.org", False)]:
            r = httpx.get(server.url + "/api/tags", headers={"Origin": origin})
            assert (r.headers.get("access-control-allow-origin") == origin) is allowed, origin
    with run_server(models_dir, origins="*") as server:
        r = httpx.get(server.url + "/api/tags", headers={"Origin": "https://any.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers  # never wildcard with credentials


def test_rebinding_host_is_refused_on_loopback(server: RunningServer) -> None:
    assert httpx.get(server.url + "/api/tags", headers={"Host": "attacker.example"}).status_code == 403
    assert httpx.get(server.url + "/api/tags", headers={"Host": "localhost:11434"}).status_code == 200
    assert httpx.get(server.url + "/api/tags").status_code == 200


@pytest.mark.parametrize(("host", "ok"), [
    ("localhost", True), ("127.0.0.1:11434", True), ("[::1]:80", True), ("x.localhost", True),
    ("printer.local", True), ("host.docker.internal", True), ("evil.example", False), ("10.0.0.1", False),
    ("localhost.evil.example", False),
])
def test_host_rules(host: str, ok: bool) -> None:
    assert host_allowed(host) is ok
