"""LoRA adapters (issue 22 item 2): ``ADAPTER`` / ``adapters`` in ``/api/create`` are stored as
adapter layers, checked against the base model, and applied by the runner at Ollama's scale.

The adapters are generated per test from SmolLM2's own tensor shapes (``tests/adapter_ggufs.py``);
the reference is llama-cpp-python's ``Llama(lora_path=...)`` on the same two files.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import llama_cpp
import ollama
import pytest

from adapter_ggufs import write_lora_gguf
from serving import RunningServer
from skyllama.demo import SMOLLM2_NAME, smollm2_gguf
from skyllama.manifest import MEDIA_ADAPTER

PROMPT = "The capital of France is"
OPTIONS = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 16, "seed": 7}


def upload(server: RunningServer, path: Path) -> str:
    return ollama.Client(host=server.url).create_blob(path)


def generate(server: RunningServer, model: str) -> dict[str, object]:
    r = httpx.post(f"{server.url}/api/generate", timeout=300, json={
        "model": model, "prompt": PROMPT, "raw": True, "stream": False, "options": OPTIONS})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def reference(lora: Path | None) -> str:
    """llama-cpp-python's own greedy answer with ``lora_path`` (its only LoRA switch)."""
    llm = llama_cpp.Llama(str(smollm2_gguf()), n_ctx=512, n_threads=2, verbose=False,
                          lora_path=str(lora) if lora else None)
    try:
        out = llm.create_completion(PROMPT, max_tokens=OPTIONS["num_predict"], temperature=0, repeat_penalty=1.0)
        return str(out["choices"][0]["text"])
    finally:
        llm.close()


def create(server: RunningServer, **request: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/create", json={"stream": False, **request}, timeout=120)


def test_adapter_changes_greedy_output_as_llama_cpp_applies_it(demo_server: RunningServer, tmp_path: Path) -> None:
    lora = write_lora_gguf(tmp_path / "lora.gguf", smollm2_gguf())
    digest = upload(demo_server, lora)
    r = create(demo_server, model="smol-lora", **{"from": SMOLLM2_NAME}, adapters={"lora.gguf": digest})
    assert r.status_code == 200, r.text

    base, adapted = generate(demo_server, SMOLLM2_NAME), generate(demo_server, "smol-lora")
    assert adapted["response"] != base["response"]
    assert base["response"] == reference(None)
    assert adapted["response"] == reference(lora)  # token for token: same text, same count
    assert adapted["eval_count"] == base["eval_count"] == OPTIONS["num_predict"]

    # a model with an adapter is its own runner: both stay loaded side by side
    running = {m["name"] for m in httpx.get(f"{demo_server.url}/api/ps").json()["models"]}
    assert {SMOLLM2_NAME, "smol-lora:latest"} <= running

    manifest = json.loads((demo_server.settings.models / "manifests" / "registry.ollama.ai" / "library"
                           / "smol-lora" / "latest").read_text())
    layers = [layer for layer in manifest["layers"] if layer["mediaType"] == MEDIA_ADAPTER]
    assert [layer["digest"] for layer in layers] == [digest]
    assert layers[0]["size"] == lora.stat().st_size


def test_modelfile_adapter_line_and_show(demo_server: RunningServer, tmp_path: Path) -> None:
    lora = write_lora_gguf(tmp_path / "lora.gguf", smollm2_gguf(), seed=3)
    digest = upload(demo_server, lora)
    r = create(demo_server, model="smol-mf", modelfile=f"FROM {SMOLLM2_NAME}\nADAPTER @{digest}\n")
    assert r.status_code == 200, r.text
    shown = ollama.Client(host=demo_server.url).show("smol-mf")
    assert f"ADAPTER @{digest}" in (shown.modelfile or "")
    # the Modelfile show writes creates the same model again
    again = create(demo_server, model="smol-mf2", modelfile=shown.modelfile)
    assert again.status_code == 200, again.text
    assert f"ADAPTER @{digest}" in (ollama.Client(host=demo_server.url).show("smol-mf2").modelfile or "")
    # a model created from the adapted one keeps its adapter
    child = create(demo_server, model="smol-child", **{"from": "smol-mf"}, system="Be brief.")
    assert child.status_code == 200, child.text
    assert f"ADAPTER @{digest}" in (ollama.Client(host=demo_server.url).show("smol-child").modelfile or "")


@pytest.mark.parametrize("kind, needle", [
    ({"arch": "qwen2"}, "model arch and LoRA arch mismatch"),
    ({"wrong_shape": True}, "has incorrect shape"),
    ({"extra": "blk.99.attn_q.weight"}, "does not exist in base model"),
    ({"kind": "model"}, "expect general.type to be 'adapter'"),
])
def test_adapter_that_does_not_fit_is_a_400(demo_server: RunningServer, tmp_path: Path,
                                           kind: dict[str, object], needle: str) -> None:
    lora = write_lora_gguf(tmp_path / "bad.gguf", smollm2_gguf(), **kind)  # type: ignore[arg-type]
    digest = upload(demo_server, lora)
    r = create(demo_server, model="smol-bad", **{"from": SMOLLM2_NAME}, adapters={"bad.gguf": digest})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert httpx.post(f"{demo_server.url}/api/show", json={"model": "smol-bad"}).status_code == 404


def test_adapter_line_naming_a_path_or_missing_blob_is_a_400(demo_server: RunningServer) -> None:
    r = create(demo_server, model="smol-bad", modelfile=f"FROM {SMOLLM2_NAME}\nADAPTER ./lora.gguf\n")
    assert r.status_code == 400 and "names a file" in r.json()["error"]
    missing = "sha256:" + "0" * 64
    r = create(demo_server, model="smol-bad", **{"from": SMOLLM2_NAME}, adapters={"x.gguf": missing})
    assert r.status_code == 400 and "not found" in r.json()["error"]
