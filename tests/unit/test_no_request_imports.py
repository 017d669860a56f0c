"""Nothing of skyllama is imported inside a request (issue 17): a first request that imports a
module lazily, while others do the same, once failed with partially initialized modules
(``cannot import name 'parse_tag' from partially initialized module``). Everything a route needs
is imported when the app is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def folder(demo_models: Path, tmp_path: Path) -> Path:
    from serving import clone_models

    return clone_models(demo_models, tmp_path / "m")


SCRIPT = """
import subprocess
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import httpx
from serving import run_server
from skyllama.engine.fake import FakeEngine

engine = FakeEngine()
with run_server(Path({folder!r}), engine=engine) as server:
    before = {{m for m in sys.modules if m.startswith("skyllama")}}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        engine.enqueue(["<think>hm</think>", "Hello", " world"])
        r = c.post("/api/chat", json={{"model": "smollm2:135m", "stream": False,
                   "messages": [{{"role": "user", "content": "hi"}}],
                   "tools": [{{"type": "function", "function": {{"name": "f", "parameters": {{"type": "object"}}}}}}]}})
        assert r.status_code == 200, r.text
        r = c.post("/api/generate", json={{"model": "smollm2:135m", "prompt": "hi",
                   "format": {{"type": "object", "properties": {{"a": {{"type": "string"}}}}}}}})
        assert r.status_code == 200, r.text
        assert c.post("/api/embed", json={{"model": "all-minilm", "input": ["a", "b"]}}).status_code == 200
        assert c.post("/v1/chat/completions", json={{"model": "smollm2:135m",
                      "messages": [{{"role": "user", "content": "hi"}}]}}).status_code == 200
        assert c.post("/v1/messages", json={{"model": "smollm2:135m", "max_tokens": 5,
                      "messages": [{{"role": "user", "content": "hi"}}]}}).status_code == 200
        for path in ("/api/tags", "/api/ps", "/v1/models", "/api/version", "/metrics", "/api/usage"):
            assert c.get(path).status_code == 200, path
        assert c.post("/api/show", json={{"model": "smollm2:135m"}}).status_code == 200
        assert c.post("/api/copy", json={{"source": "smollm2:135m", "destination": "copy"}}).status_code == 200
        assert c.request("DELETE", "/api/delete", json={{"model": "copy"}}).status_code == 200
        assert c.post("/api/create", json={{"model": "x", "from": "smollm2:135m", "system": "hi",
                      "stream": False}}).status_code == 200
        assert c.post("/api/pull", json={{"model": "127.0.0.1:1/a/b", "insecure": True}}).status_code >= 400
        assert c.get("/v2/library/x/manifests/latest").status_code in (200, 404)
    after = {{m for m in sys.modules if m.startswith("skyllama")}}
print(sorted(after - before))
"""


def test_requests_import_nothing_of_skyllama(folder: Path) -> None:
    """In a fresh interpreter, so modules other tests imported cannot hide a lazy import."""
    tests = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=tests, folder=str(folder))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
