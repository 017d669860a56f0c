"""``/api/tags`` entries carry ``capabilities`` (Ollama v0.30), computed as ``/api/show`` does."""

from pathlib import Path

import httpx
import ollama

from ggufs import write_tiny_gguf
from serving import RunningServer


def test_demo_models_capabilities(demo_server: RunningServer) -> None:
    models = {m["name"]: m for m in httpx.get(demo_server.url + "/api/tags").json()["models"]}
    assert models["all-minilm:latest"]["capabilities"] == ["embedding"]
    assert models["smollm2:135m"]["capabilities"][:2] == ["completion", "tools"]


def test_tiny_model_and_unreadable_weights(server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=server.url)
    digest = client.create_blob(write_tiny_gguf(tmp_path / "t.gguf"))
    client.create(model="tiny", files={"t.gguf": digest})
    client.copy("tiny", "tiny2")
    entry = httpx.get(server.url + "/api/tags").json()["models"][0]
    assert entry["capabilities"] == ["completion"]
    # a model whose weights vanished still lists, without capabilities
    (server.settings.models / "blobs" / digest.replace(":", "-")).unlink()
    server.runtime.catalog._gguf_cache.clear()  # noqa: SLF001 - force a re-read
    entries = httpx.get(server.url + "/api/tags").json()["models"]
    assert {e["name"] for e in entries} == {"tiny:latest", "tiny2:latest"}
    assert all("capabilities" not in e for e in entries)
