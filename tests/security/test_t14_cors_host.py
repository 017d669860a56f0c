"""T-14 CORS and Host: no wildcard with credentials, no Origin reflection, unexpected Host
rejected (DNS rebinding) on a loopback server. ``tests/api/test_origins.py`` covers the allowed
origins; here the hostile variants, through a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serving import RunningServer, run_server

HOSTILE_ORIGINS = ["https://evil.example", "http://localhost.evil.example", "null", "http://127.0.0.1.nip.io",
                   "http://localhost@evil.example", "https://evil.example/http://localhost",
                   "http://[::1].evil.example"]
HOSTILE_HOSTS = ["attacker.example", "attacker.example:11434", "127.0.0.1.nip.io", "localhost.attacker.example",
                 "localhost@attacker.example", "0x7f000001.attacker.example", "10.0.0.1", "169.254.169.254"]


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
def test_hostile_origins_are_never_reflected(server: RunningServer, origin: str) -> None:
    for method in ("GET", "POST"):
        pre = httpx.options(server.url + "/api/chat", headers={
            "Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.headers.get("access-control-allow-origin") in (None, "")
        assert pre.headers.get("access-control-allow-credentials") is None
    r = httpx.get(server.url + "/api/tags", headers={"Origin": origin, "Cookie": "session=1"})
    assert r.headers.get("access-control-allow-origin") in (None, "")
    assert r.status_code == 403  # and refused outright (T-34)


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_rebinding_hosts_are_refused(server: RunningServer, host: str) -> None:
    for method, path in (("GET", "/api/tags"), ("POST", "/api/show"), ("GET", "/v1/models")):
        r = httpx.request(method, server.url + path, headers={"Host": host}, json={"model": "x"})
        assert r.status_code == 403, (host, path, r.status_code)


def test_wildcard_origins_never_allow_credentials(models_dir: Path) -> None:
    with run_server(models_dir, origins="*") as server:
        for origin in ("https://any.example", "http://localhost:3000"):
            pre = httpx.options(server.url + "/api/tags", headers={"Origin": origin,
                                                                  "Access-Control-Request-Method": "GET"})
            assert pre.headers.get("access-control-allow-origin") in ("*", None)
            assert pre.headers.get("access-control-allow-credentials") is None
            r = httpx.get(server.url + "/api/tags", headers={"Origin": origin})
            assert r.headers.get("access-control-allow-origin") == "*"
            assert r.headers.get("access-control-allow-credentials") is None
