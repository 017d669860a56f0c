"""``/api/create`` from safetensors files and ``quantize``, through a real server and the official client.

all-MiniLM-L6-v2's own Hugging Face files are uploaded as blobs and converted; the F16 result must
match sentence-transformers (``tests/data/minilm_reference.json``) and its quantizations the F16
model. Every bad upload is a 400 before any progress line, and leaves no manifest and no new blob.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest

from serving import RunningServer
from skyllama.convert.demo_assets import minilm_model_dir
from skyllama.demo_embed import minilm_files

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "minilm_reference.json").read_text("utf-8"))
BERT_CONFIG = {"architectures": ["BertModel"], "hidden_size": 8, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 8,
               "max_position_embeddings": 16, "type_vocab_size": 2}


@pytest.fixture
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def upload_minilm(client: ollama.Client) -> dict[str, str]:
    return {name: client.create_blob(path) for name, path in minilm_files(minilm_model_dir()).items()}


def statuses(events: object) -> list[str]:
    return [e.status or "" for e in events]  # type: ignore[attr-defined]


def embed(server: RunningServer, model: str, texts: list[str]) -> np.ndarray:
    r = httpx.post(f"{server.url}/api/embed", json={"model": model, "input": texts}, timeout=300)
    assert r.status_code == 200, r.text
    return np.array(r.json()["embeddings"], dtype=np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def stored(server: RunningServer) -> tuple[set[str], set[str]]:
    """Every manifest (relative path) and every blob file name in the models folder."""
    root = server.settings.models
    manifests = {str(p.relative_to(root)) for p in (root / "manifests").rglob("*") if p.is_file()}
    blobs = {p.name for p in (root / "blobs").iterdir()} if (root / "blobs").is_dir() else set()
    return manifests, blobs


def test_create_from_safetensors_show_embed_and_quantize(server: RunningServer, client: ollama.Client) -> None:
    files = upload_minilm(client)
    events = statuses(client.create(model="all-minilm", files=files, stream=True))
    assert events[:2] == ["parsing model files", "converting model"]
    assert any(s.startswith("converting BertModel model to GGUF") for s in events)
    layer = next(s for s in events if s.startswith("creating new layer sha256:"))
    assert events.index(layer) < events.index("writing manifest") and events[-1] == "success"

    shown = client.show("all-minilm")
    assert "embedding" in (shown.capabilities or []) and "completion" not in (shown.capabilities or [])
    assert shown.details.family == "bert" and shown.details.format == "gguf"
    assert shown.details.quantization_level == "F16" and shown.modelinfo["bert.embedding_length"] == 384
    assert [m.model for m in client.list().models] == ["all-minilm:latest"]

    f16 = embed(server, "all-minilm", REFERENCE["sentences"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float64)
    assert len(REFERENCE["sentences"]) >= 20 and cosines(f16, reference).min() >= 0.9999

    events = statuses(client.create(model="all-minilm:q8", from_="all-minilm", quantize="q8_0", stream=True))
    assert events[0] == "quantizing F16 model to Q8_0"
    assert events[1].startswith("creating new layer sha256:") and events[-2:] == ["writing manifest", "success"]
    assert client.show("all-minilm:q8").details.quantization_level == "Q8_0"
    q8 = embed(server, "all-minilm:q8", REFERENCE["sentences"])
    assert cosines(q8, f16).min() >= 0.99

    with pytest.raises(ollama.ResponseError) as e:
        client.create(model="again", from_="all-minilm:q8", quantize="q4_K_M")
    assert e.value.status_code == 400 and e.value.error == "quantization is only supported for F16, BF16 and F32 models (this one is Q8_0)"
    assert sorted(m.model for m in client.list().models) == ["all-minilm:latest", "all-minilm:q8"]


def test_convert_and_quantize_in_one_create_keeps_no_f16_blob(server: RunningServer, client: ollama.Client) -> None:
    files = upload_minilm(client)
    events = statuses(client.create(model="mini", files=files, quantize="q4_K_M", stream=True))
    assert "quantizing F16 model to Q4_K_M" in events and events[-1] == "success"
    assert sum(s.startswith("creating new layer sha256:") for s in events) >= 2
    manifest = server.settings.models / "manifests" / "registry.ollama.ai" / "library" / "mini" / "latest"
    model_digest = json.loads(manifest.read_text())["layers"][0]["digest"]
    _manifests, blobs = stored(server)
    uploaded = {d.replace(":", "-") for d in files.values()}
    ggufs = [b for b in blobs - uploaded if (server.settings.models / "blobs" / b).read_bytes()[:4] == b"GGUF"]
    assert ggufs == [model_digest.replace(":", "-")]  # the intermediate F16 conversion was pruned
    assert client.show("mini").details.quantization_level == "Q4_K_M"
    vectors = embed(server, "mini", REFERENCE["sentences"][:5])
    assert cosines(vectors, np.array(REFERENCE["vectors"][:5])).min() >= 0.95


def safetensors_bytes(header: dict[str, object], data: bytes = b"", header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


def tensor(shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


GOOD_WEIGHTS = safetensors_bytes({"embeddings.word_embeddings.weight": tensor([8, 8], 0, 256)}, bytes(256))

BAD_UPLOADS: dict[str, tuple[dict[str, bytes], str]] = {
    "unknown architecture": (
        {"config.json": json.dumps({**BERT_CONFIG, "architectures": ["FrobnicatorForMagic"]}).encode(),
         "model.safetensors": GOOD_WEIGHTS},
        "unsupported architecture 'FrobnicatorForMagic'",
    ),
    "missing config.json": (
        {"model.safetensors": GOOD_WEIGHTS, "tokenizer.json": b"{}"},
        "config.json is missing",
    ),
    "truncated safetensors header": (
        {"config.json": json.dumps(BERT_CONFIG).encode(),
         "model.safetensors": safetensors_bytes({"a": tensor([2], 0, 8)}, header_len=4096)[:100]},
        "invalid safetensors file 'model.safetensors'",
    ),
    "byte length disagrees with shape": (
        {"config.json": json.dumps(BERT_CONFIG).encode(),
         "model.safetensors": safetensors_bytes({"embeddings.word_embeddings.weight": tensor([8, 8], 0, 200)},
                                                bytes(200))},
        "invalid safetensors file 'model.safetensors'",
    ),
}


def upload_bytes(server: RunningServer, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code in (200, 201)
    return digest


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_400_and_leave_nothing(server: RunningServer, client: ollama.Client, case: str) -> None:
    contents, message = BAD_UPLOADS[case]
    files = {name: upload_bytes(server, data) for name, data in contents.items()}
    before = stored(server)
    with pytest.raises(ollama.ResponseError) as e:
        list(client.create(model="broken", files=files, stream=True))
    assert e.value.status_code == 400 and message in e.value.error, e.value.error
    assert stored(server) == before and not before[0]


@pytest.mark.parametrize("name", ["../config.json", "/etc/passwd", "sub/../../x.json", "a\\..\\b.json",
                                  "./config.json", "c:config.json", "a//b.json"])
def test_path_traversal_file_names_are_400(server: RunningServer, client: ollama.Client, name: str) -> None:
    config = upload_bytes(server, json.dumps(BERT_CONFIG).encode())
    weights = upload_bytes(server, GOOD_WEIGHTS)
    before = stored(server)
    with pytest.raises(ollama.ResponseError) as e:
        list(client.create(model="broken", files={name: config, "model.safetensors": weights}, stream=True))
    assert e.value.status_code == 400 and "invalid file name" in e.value.error
    assert stored(server) == before and not before[0]


def test_quantize_bad_levels_and_sources(server: RunningServer, client: ollama.Client, tmp_path: Path) -> None:
    from ggufs import write_tiny_gguf

    digest = client.create_blob(write_tiny_gguf(tmp_path / "tiny.gguf"))
    before = stored(server)
    for level, message in [("q9_X", "unsupported quantization 'q9_X'"), ("F16", "unsupported quantization")]:
        with pytest.raises(ollama.ResponseError) as e:
            list(client.create(model="tiny", files={"tiny.gguf": digest}, quantize=level, stream=True))
        assert e.value.status_code == 400 and message in e.value.error
    r = httpx.post(f"{server.url}/api/create", json={"model": "t", "from": "missing-model", "quantize": "q8_0"})
    assert r.status_code == 400 and "not found" in r.json()["error"]
    assert stored(server) == before


# The first ten values Ollama's API docs show for all-minilm (docs/api.md, "Generate Embeddings").
OLLAMA_DOC_VALUES = [
    [0.010071029, -0.0017594862, 0.05007221, 0.04692972, 0.054916814,
     0.008599704, 0.105441414, -0.025878139, 0.12958129, 0.031952348],
    [-0.0098027075, 0.06042469, 0.025257962, -0.006364387, 0.07272725,
     0.017194884, 0.09032035, -0.051705178, 0.09951512, 0.09072481],
]


def test_demo_all_minilm_answers_the_docs_curl_verbatim(demo_server: RunningServer) -> None:
    body = '{"model": "all-minilm", "input": ["Why is the sky blue?", "Why is the grass green?"]}'
    r = httpx.post(f"{demo_server.url}/api/embed", content=body, timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "all-minilm" and len(out["embeddings"]) == 2 and out["prompt_eval_count"] == 16
    for vector, documented in zip(out["embeddings"], OLLAMA_DOC_VALUES, strict=True):
        assert len(vector) == 384 and np.allclose(vector[:10], documented, atol=5e-4)
    single = httpx.post(f"{demo_server.url}/api/embed",
                        content='{"model": "all-minilm", "input": "Why is the sky blue?"}', timeout=60).json()
    assert single["prompt_eval_count"] == 8
    shown = ollama.Client(host=demo_server.url).show("all-minilm:l6-v2")
    assert shown.details.family == "bert" and "embedding" in (shown.capabilities or [])
