"""The console's server side over real HTTP: ``/ui`` served from the package with a strict CSP
and no way out of its folder, public pages but keyed API calls, ``/ui/config.json``, the
``/api/keys`` admin routes, the quota fields of ``/api/usage``, and ``skyllama usage``."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.cli import main
from skyllama.engine.fake import FakeEngine
from skyllama.http.ui import ASSETS, CSP
from skyllama.pricing import Prices

MODEL = "smollm2:135m"
INDEX_REFS = re.compile(r'(?:src|href)="([^"]+)"')
IMPORTS = re.compile(r'from "\./([^"]+)"')


@pytest.fixture(scope="module")
def keyed(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = clone_models(demo_models, tmp_path_factory.mktemp("console") / "models")
    with run_server(folder, engine=FakeEngine(), auth="on", prices="million_tokens=2") as running:
        yield running


def bearer(server: RunningServer, *scopes: str, owner: str = "alice", **quotas: int) -> tuple[dict[str, str], str]:
    secret, record = server.runtime.keys.create_key(name="t", owner=owner, scopes=list(scopes), **quotas)
    return {"Authorization": f"Bearer {secret}"}, record["id"]


def settled(server: RunningServer, key_id: str, count: int) -> None:
    """Usage is recorded once the last byte is sent: the client may be a moment ahead."""
    deadline = time.monotonic() + 10
    while len(server.runtime.meter.records(key_id)) < count:
        assert time.monotonic() < deadline, f"{key_id}: fewer than {count} usage records"
        time.sleep(0.02)


def test_the_console_is_served_with_a_strict_csp(server: RunningServer) -> None:
    assert httpx.get(server.url + "/").text == "Ollama is running"
    moved = httpx.get(server.url + "/ui")
    assert moved.status_code == 308 and moved.headers["location"] == "ui/"  # relative: keeps a path prefix
    page = httpx.get(server.url + "/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"):
        assert directive in CSP
    assert "unsafe" not in CSP
    assert page.headers["x-content-type-options"] == "nosniff" and "set-cookie" not in page.headers
    script = httpx.get(server.url + "/ui/js/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == CSP
    again = httpx.get(server.url + "/ui/js/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert httpx.head(server.url + "/ui/console.css").headers["content-length"] == str(len(ASSETS["console.css"].body))


def test_the_console_ships_every_file_it_uses_and_nothing_from_elsewhere() -> None:
    index = ASSETS["index.html"].body.decode()
    for ref in INDEX_REFS.findall(index):
        assert ref.startswith("data:") or ref in ASSETS, ref
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index), "inline script"
    assert " style=" not in index and "javascript:" not in index
    for name, asset in ASSETS.items():
        text = asset.body.decode()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (name, urls)  # no CDN, nothing fetched from anywhere else
        if name.endswith(".js"):
            for imported in IMPORTS.findall(text):
                assert f"js/{imported}" in ASSETS, (name, imported)
            assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function", text), name
            assert not re.search(r"""["'`]/(api|v1|ui)\b""", text), f"{name}: absolute API path (breaks a stage prefix)"
            assert "document.cookie" not in text and "localStorage" not in text, name  # the key lives in the tab only


def test_only_shipped_files_are_served(server: RunningServer) -> None:
    for path in ("/ui/nope.js", "/ui/%2e%2e/ui.py", "/ui/..%2fui.py", "/ui/js/%2e%2e/%2e%2e/ui.py", "/ui/index.html",
                 "/ui/js", "/ui/../pyproject.toml"):
        r = httpx.get(server.url + path)
        assert r.status_code == 404 and "not found" in r.text and "import" not in r.text, path


def test_with_auth_on_the_pages_are_public_and_the_api_is_not(keyed: RunningServer) -> None:
    for path in ("/ui/", "/ui/js/api.js", "/ui/console.css"):
        assert httpx.get(keyed.url + path).status_code == 200, path
    config = httpx.get(keyed.url + "/ui/config.json").json()
    assert config["auth"] is True and config["prices"] == Prices(per_million_tokens=2).to_wire()
    assert httpx.get(keyed.url + "/api/tags").status_code == 401
    headers, _id = bearer(keyed, "inference")
    assert httpx.get(keyed.url + "/api/tags", headers=headers).status_code == 200


def test_same_origin_calls_from_the_console_pass_the_origin_check(keyed: RunningServer) -> None:
    headers, _id = bearer(keyed, "inference")
    port = keyed.url.rsplit(":", 1)[1]
    # the console reached by a name of this machine (no default origin): the same-origin rule lets it in
    own = {**headers, "Host": f"console.internal:{port}", "Origin": f"http://console.internal:{port}"}
    r = httpx.post(keyed.url + "/api/show", json={"model": MODEL}, headers=own)
    assert r.status_code == 200 and r.json()["details"]["family"] == "llama"
    other = {**own, "Origin": "http://evil.example"}
    assert httpx.post(keyed.url + "/api/show", json={"model": MODEL}, headers=other).status_code == 403


def test_keys_api_creates_lists_and_revokes_for_admins_only(keyed: RunningServer) -> None:
    admin, _ = bearer(keyed, "admin")
    manager, _ = bearer(keyed, "inference", "manage")
    body = {"name": "ci", "owner": "bob", "scopes": ["inference"], "tokens_per_day": 500}
    for method, path in (("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys/key_0")):
        assert httpx.request(method, keyed.url + path, json=body, headers=manager).status_code == 403
    created = httpx.post(keyed.url + "/api/keys", json=body, headers=admin)
    assert created.status_code == 201
    secret, record = created.json()["secret"], created.json()["key"]
    assert secret.startswith("sk-sky-") and record["owner"] == "bob" and record["quotas"] == {"tokens_per_day": 500}
    assert "hash" not in record and "secret" not in record
    new = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(keyed.url + "/api/tags", headers=new).status_code == 200
    listing = httpx.get(keyed.url + "/api/keys", headers=admin)
    assert secret not in listing.text and "hash" not in listing.text
    assert record["id"] in [k["id"] for k in listing.json()["keys"]]
    revoked = httpx.delete(keyed.url + f"/api/keys/{record['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["key"]["revoked"] is True
    assert httpx.get(keyed.url + "/api/tags", headers=new).status_code == 401  # at once, in this process
    for bad in ({"name": "x", "owner": "no spaces", "scopes": ["inference"]}, {"name": "x", "owner": "b", "scopes": ["root"]},
                {"name": "", "owner": "b"}, {"name": "x", "owner": "b", "rpm": 0}, {"owner": "b"}):
        r = httpx.post(keyed.url + "/api/keys", json=bad, headers=admin)
        assert r.status_code == 400 and isinstance(r.json()["error"], str), bad
    assert httpx.delete(keyed.url + "/api/keys/key_nope", headers=admin).status_code == 404
    assert httpx.delete(keyed.url + "/api/keys/a%20b", headers=admin).status_code == 400


def test_usage_tells_the_quota_and_todays_tokens(keyed: RunningServer) -> None:
    headers, key_id = bearer(keyed, "inference", owner="carol", tokens_per_day=10_000, rpm=100)
    client = ollama.Client(host=keyed.url, headers=headers)
    client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    settled(keyed, key_id, 1)
    mine = httpx.get(keyed.url + "/api/usage", headers=headers).json()
    (row,) = mine["days"][0]["models"]
    assert mine["quotas"] == {"tokens_per_day": 10_000, "rpm": 100}
    assert mine["tokens_today"] == row["prompt_tokens"] + row["completion_tokens"] > 0
    admin, _ = bearer(keyed, "admin")
    theirs = httpx.get(keyed.url + "/api/usage", params={"key": key_id}, headers=admin).json()
    assert theirs["owner"] == "carol" and theirs["quotas"] == mine["quotas"] and theirs["tokens_today"] == mine["tokens_today"]


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], server: RunningServer,
            secret: str | None, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    if secret:
        monkeypatch.setenv("SKYLLAMA_API_KEY", secret)
    code = main(["usage", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_skyllama_usage_prints_a_table_with_the_estimated_cost(keyed: RunningServer, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    secret, record = keyed.runtime.keys.create_key(name="u", owner="dora", scopes=["inference"], tokens_per_day=5000)
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {secret}"})
    for _ in range(2):
        client.generate(model=MODEL, prompt="hello")
    client.embed(model="all-minilm", input=["a", "b", "c"])
    settled(keyed, record["id"], 3)
    code, out, _err = run_cli(monkeypatch, capsys, keyed, secret, "--json")
    assert code == 0
    doc = json.loads(out)
    models = {m["model"]: m for day in doc["usage"][0]["days"] for m in day["models"]}
    assert models[MODEL]["requests"] == 2 and models["all-minilm"]["embedding_inputs"] == 3
    prices = Prices(per_million_tokens=2)  # the server's SKYLLAMA_PRICES is not the client's
    assert doc["prices"] == Prices().to_wire()
    assert doc["estimated_cost"] == pytest.approx(sum(Prices().cost_of(m) for m in models.values()))
    code, out, _err = run_cli(monkeypatch, capsys, keyed, secret, "--prices", "million_tokens=2",
                              "--price-per-request", "0.01")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "DATE", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "INPUTS", "TIME", "EST.", "COST"]
    row = next(line.split() for line in lines if f" {MODEL} " in line)
    assert row[0] == record["id"] and row[3] == "2"
    expected = Prices.parse("request=0.01", prices).cost_of(models[MODEL])
    assert row[-1] == (f"${expected:.2f}" if expected >= 0.01 else f"${expected:.2g}")
    assert "of 5000 tokens today" in out and "Estimated cost over 7 days" in out
    # another key's usage or all keys: admin only
    code, _out, err = run_cli(monkeypatch, capsys, keyed, secret, "--all")
    assert code == 1 and "forbidden" in err
    admin_secret, _ = keyed.runtime.keys.create_key(name="adm", owner="ops", scopes=["admin"])
    code, out, _err = run_cli(monkeypatch, capsys, keyed, admin_secret, "--all")
    assert code == 0 and record["id"] in out
    code, out, _err = run_cli(monkeypatch, capsys, keyed, admin_secret, "--key", record["id"])
    assert code == 0 and record["id"] in out and "dora" in out
    code, _out, err = run_cli(monkeypatch, capsys, keyed, secret, "--prices", "cents=3")
    assert code == 1 and "name=number" in err


def test_skyllama_usage_with_auth_off(demo_fake_server: RunningServer, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ollama.Client(host=demo_fake_server.url).generate(model=MODEL, prompt="hi")
    settled(demo_fake_server, "anonymous", 1)
    code, out, _err = run_cli(monkeypatch, capsys, demo_fake_server, None, "--days", "1")
    assert code == 0 and "anonymous" in out and MODEL in out
    buffer = io.StringIO(out)
    assert any(line.startswith("anonymous (local)") for line in buffer)
