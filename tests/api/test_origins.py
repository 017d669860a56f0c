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
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in r.headers


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
