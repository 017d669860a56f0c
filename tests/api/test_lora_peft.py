"""PEFT safetensors LoRA adapters in ``/api/create`` (issue 22 item 2): ``adapters`` naming
``adapter_config.json`` + ``adapter_model.safetensors`` (Ollama's JSON form) and a Modelfile
``ADAPTER ./folder`` through ``skyllama create`` are converted to a GGUF LoRA.

The PEFT files hold the very pairs of a GGUF LoRA from ``tests/adapter_ggufs.py`` in PEFT's layout
and Hugging Face names (Q/K rows of ``lora_B`` in HF order), so the converted model must decode
token for token as the one created from that GGUF.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest
from gguf import GGUFReader

from adapter_ggufs import ALL_TARGETS, peft_tensors, write_lora_gguf, write_peft_adapter
from serving import RunningServer
from skyllama.client.create import CreateError, build_request, create_model
from skyllama.demo import SMOLLM2_NAME, smollm2_gguf
from skyllama.demo_embed import MINILM_NAME
from skyllama.manifest import MEDIA_ADAPTER

PROMPT = "The capital of France is"
OPTIONS = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 16, "seed": 7}
Q = "base_model.model.model.layers.0.self_attn.q_proj"


def upload(server: RunningServer, path: Path) -> str:
    return ollama.Client(host=server.url).create_blob(path)


def upload_folder(server: RunningServer, folder: Path) -> dict[str, str]:
    return {p.name: upload(server, p) for p in sorted(folder.iterdir())}


def create(server: RunningServer, **request: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/create", json={"stream": False, **request}, timeout=120)


def generate(server: RunningServer, model: str) -> dict[str, object]:
    r = httpx.post(f"{server.url}/api/generate", timeout=300, json={
        "model": model, "prompt": PROMPT, "raw": True, "stream": False, "options": OPTIONS})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def adapter_layers(server: RunningServer, model: str) -> list[str]:
    manifest = json.loads((server.settings.models / "manifests" / "registry.ollama.ai" / "library"
                           / model / "latest").read_text())
    return [layer["digest"] for layer in manifest["layers"] if layer["mediaType"] == MEDIA_ADAPTER]


def blob_path(server: RunningServer, digest: str) -> Path:
    return server.settings.models / "blobs" / digest.replace(":", "-")


def f16_lora(tmp_path: Path, seed: int = 5) -> Path:
    """A GGUF LoRA on all seven projections of four blocks, F16 as the converter writes it."""
    return write_lora_gguf(tmp_path / "lora.gguf", smollm2_gguf(), seed=seed, targets=ALL_TARGETS, dtype=np.float16)


def test_peft_adapter_decodes_as_the_gguf_lora(demo_server: RunningServer, tmp_path: Path) -> None:
    lora = f16_lora(tmp_path)
    folder = write_peft_adapter(tmp_path / "peft", peft_tensors(lora, smollm2_gguf()))
    r = create(demo_server, model="smol-gguf", **{"from": SMOLLM2_NAME}, adapters={"lora.gguf": upload(demo_server, lora)})
    assert r.status_code == 200, r.text
    r = create(demo_server, model="smol-peft", **{"from": SMOLLM2_NAME}, adapters=upload_folder(demo_server, folder))
    assert r.status_code == 200, r.text

    base, reference, adapted = (generate(demo_server, m) for m in (SMOLLM2_NAME, "smol-gguf", "smol-peft"))
    assert adapted["response"] != base["response"]
    assert adapted["response"] == reference["response"]  # token for token: same text, same count
    assert adapted["eval_count"] == reference["eval_count"] == OPTIONS["num_predict"]

    # The stored layer is a GGUF LoRA with the reference's keys and exactly its tensors.
    [digest] = adapter_layers(demo_server, "smol-peft")
    converted, expected = GGUFReader(str(blob_path(demo_server, digest))), GGUFReader(str(lora))
    assert converted.fields["general.type"].contents() == "adapter"
    assert converted.fields["adapter.type"].contents() == "lora"
    assert converted.fields["adapter.lora.alpha"].contents() == 16.0
    assert converted.fields["general.architecture"].contents() == "llama"
    got = {t.name: (t.tensor_type.name, list(t.shape), np.array(t.data).tobytes()) for t in converted.tensors}
    want = {t.name: (t.tensor_type.name, list(t.shape), np.array(t.data).tobytes()) for t in expected.tensors}
    assert got == want

    shown = ollama.Client(host=demo_server.url).show("smol-peft")
    assert f"ADAPTER @{digest}" in (shown.modelfile or "")


def test_modelfile_adapter_folder_through_skyllama_create(demo_server: RunningServer, tmp_path: Path) -> None:
    lora = f16_lora(tmp_path, seed=9)
    write_peft_adapter(tmp_path / "my-adapter", peft_tensors(lora, smollm2_gguf()))
    (tmp_path / "my-adapter" / "README.md").write_text("# a fine-tune\n")  # not uploaded
    (tmp_path / "Modelfile").write_text(f"FROM {SMOLLM2_NAME}\nADAPTER ./my-adapter\n")
    lines: list[str] = []
    create_model(demo_server.url, "smol-mf-peft", tmp_path / "Modelfile", say=lines.append)
    assert "converting adapter" in lines and lines[-1] == "success"

    # The JSON form with the same two files converts to the same blob.
    files = {name: upload(demo_server, tmp_path / "my-adapter" / name)
             for name in ("adapter_config.json", "adapter_model.safetensors")}
    r = create(demo_server, model="smol-json-peft", **{"from": SMOLLM2_NAME}, adapters=files)
    assert r.status_code == 200, r.text
    [digest] = adapter_layers(demo_server, "smol-mf-peft")
    assert adapter_layers(demo_server, "smol-json-peft") == [digest]
    converted = GGUFReader(str(blob_path(demo_server, digest)))
    assert {t.name for t in converted.tensors} == {t.name for t in GGUFReader(str(lora)).tensors}


def _edit(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def apply(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = dict(tensors)
        change(tensors)
        return tensors
    return apply


def _wrong_shape(t: dict[str, np.ndarray]) -> None:
    t[f"{Q}.lora_B.weight"] = np.zeros((577, 8), dtype=np.float16)


def _unknown_tensor(t: dict[str, np.ndarray]) -> None:
    t["base_model.model.lm_head.lora_A.weight"] = np.zeros((8, 576), dtype=np.float16)
    t["base_model.model.lm_head.lora_B.weight"] = np.zeros((49152, 8), dtype=np.float16)


def _missing_half(t: dict[str, np.ndarray]) -> None:
    del t[f"{Q}.lora_B.weight"]


def _rank_mismatch(t: dict[str, np.ndarray]) -> None:
    t[f"{Q}.lora_B.weight"] = np.zeros((576, 4), dtype=np.float16)


def _no_such_block(t: dict[str, np.ndarray]) -> None:
    t["base_model.model.model.layers.99.self_attn.v_proj.lora_A.weight"] = np.zeros((8, 576), dtype=np.float16)
    t["base_model.model.model.layers.99.self_attn.v_proj.lora_B.weight"] = np.zeros((192, 8), dtype=np.float16)


def _integer(t: dict[str, np.ndarray]) -> None:
    t[f"{Q}.lora_A.weight"] = np.zeros((8, 576), dtype=np.int32)


def test_adapter_that_cannot_convert_is_a_400_and_writes_nothing(demo_server: RunningServer, tmp_path: Path) -> None:
    tensors = peft_tensors(f16_lora(tmp_path), smollm2_gguf())
    bad: list[tuple[str, dict[str, object], str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None]] = [
        ("wrong shape", {}, "has incorrect shape", _edit(_wrong_shape)),
        ("unknown tensor", {"target_modules": "all-linear"}, "unexpected tensor 'base_model.model.lm_head", _edit(_unknown_tensor)),
        ("unknown target", {"target_modules": ["q_proj", "lm_head"]}, "target module 'lm_head' is not supported", None),
        ("missing half", {}, "lacks its lora_B", _edit(_missing_half)),
        ("rank mismatch", {}, "rank mismatch", _edit(_rank_mismatch)),
        ("config rank", {"r": 16}, "r=16", None),
        ("block", {}, "does not exist in base model", _edit(_no_such_block)),
        ("dtype", {}, "2-D F32, F16 or BF16", _edit(_integer)),
        ("dora", {"use_dora": True}, "DoRA", None),
        ("rslora", {"use_rslora": True}, "use_rslora", None),
        ("alpha", {"lora_alpha": None}, "needs lora_alpha", None),
        ("ia3", {"peft_type": "IA3"}, "only LoRA adapters convert", None),
        ("bias", {"bias": "all"}, "LoRA biases", None),
    ]
    for label, config, needle, edit in bad:
        folder = write_peft_adapter(tmp_path / label.replace(" ", "-"), edit(tensors) if edit else tensors, config=config)
        _expect_400(demo_server, upload_folder(demo_server, folder), needle, label)
    malformed = write_peft_adapter(tmp_path / "malformed", tensors)
    (malformed / "adapter_config.json").write_text('{"r": 8, "lora_alpha": ')
    _expect_400(demo_server, upload_folder(demo_server, malformed), "adapter_config.json is not valid UTF-8 JSON", "json")
    (malformed / "adapter_config.json").write_text("[1, 2]")
    _expect_400(demo_server, upload_folder(demo_server, malformed), "is not a JSON object", "array")
    no_config = upload_folder(demo_server, malformed)
    del no_config["adapter_config.json"]
    _expect_400(demo_server, no_config, "adapter_config.json is missing", "no config")
    # a header that claims a terabyte: the bounded reader refuses it before reading it
    good = write_peft_adapter(tmp_path / "good", tensors)
    (good / "adapter_model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    _expect_400(demo_server, upload_folder(demo_server, good), "exceeds the", "oversized header")
    # a base the converter has no mapping for
    valid = upload_folder(demo_server, write_peft_adapter(tmp_path / "valid", tensors))
    _expect_400(demo_server, valid, "for a 'bert' model is not supported", "bert", base=MINILM_NAME)


def _expect_400(server: RunningServer, files: dict[str, str], needle: str, label: str,
                base: str = SMOLLM2_NAME) -> None:
    blobs = server.settings.models / "blobs"
    before = {p.name for p in blobs.iterdir()}
    r = create(server, model="smol-bad", **{"from": base}, adapters=files)
    assert r.status_code == 400, (label, r.text)
    assert needle in r.json()["error"], (label, r.json())
    assert httpx.post(f"{server.url}/api/show", json={"model": "smol-bad"}).status_code == 404, label
    assert {p.name for p in blobs.iterdir()} == before, label  # nothing half-written


def test_two_adapter_folders_with_the_same_file_names_are_refused_by_the_client(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_peft_adapter(tmp_path / name, {}, config={"r": 4 if name == "one" else 8})
    (tmp_path / "Modelfile").write_text(f"FROM {SMOLLM2_NAME}\nADAPTER ./one\nADAPTER ./two\n")
    with pytest.raises(CreateError, match="another ADAPTER already has a file named 'adapter_config.json'"):
        build_request("x", tmp_path / "Modelfile")
    (tmp_path / "Modelfile").write_text(f"FROM {SMOLLM2_NAME}\nADAPTER ./one\n")
    request, _ = build_request("x", tmp_path / "Modelfile")
    assert set(request["adapters"]) == {"adapter_config.json", "adapter_model.safetensors"}
