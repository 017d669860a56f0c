"""A tiny random Llama / Qwen2 checkpoint converts to a GGUF that llama.cpp loads, tokenizes like the
original tokenizer, and runs with the logits of a numpy reference forward pass of the same weights.

Also: the converter's 400s for bad uploads (unknown architecture, missing config.json, a traversal
file name, a truncated safetensors header, a tensor whose bytes disagree with its shape).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from skyllama.convert import convert_model_dir
from skyllama.errors import BadRequest, InvalidModelFile

safetensors_numpy = pytest.importorskip("safetensors.numpy")
tokenizers = pytest.importorskip("tokenizers")

HIDDEN, N_HEAD, N_KV, HEAD_DIM, FFN, LAYERS, VOCAB = 64, 4, 2, 16, 128, 2, 320
THETA, EPS = 10000.0, 1e-5
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, hello llama, hello skyllama",
    "numbers like 12345 and 2024 appear in text",
    "a small model for a small test of the converter",
] * 5


LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def pre_tokenizer(style: str) -> Any:
    """The pre-tokenizers of GPT-2, SmolLM2 and Llama 3, as their tokenizer.json files define them."""
    from tokenizers import Regex, pre_tokenizers

    if style == "gpt-2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False)
    if style == "smollm":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False)
    return pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def build_tokenizer(path: Path, style: str = "gpt-2") -> None:
    """A byte-level BPE trained on a few sentences, with chat special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer(style)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(path))


def random_weights(arch: str, tied: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.15) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {"model.embed_tokens.weight": w(VOCAB, HIDDEN, scale=1.0), "model.norm.weight": 1 + w(HIDDEN)}
    if not tied:
        t["lm_head.weight"] = w(VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + w(HIDDEN)
        t[p + "post_attention_layernorm.weight"] = 1 + w(HIDDEN)
        t[p + "self_attn.q_proj.weight"] = w(N_HEAD * HEAD_DIM, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = w(N_KV * HEAD_DIM, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = w(N_KV * HEAD_DIM, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = w(HIDDEN, N_HEAD * HEAD_DIM)
        t[p + "mlp.gate_proj.weight"] = w(FFN, HIDDEN)
        t[p + "mlp.up_proj.weight"] = w(FFN, HIDDEN)
        t[p + "mlp.down_proj.weight"] = w(HIDDEN, FFN)
        if arch == "Qwen2ForCausalLM":
            for proj, n in (("q_proj", N_HEAD), ("k_proj", N_KV), ("v_proj", N_KV)):
                t[p + f"self_attn.{proj}.bias"] = w(n * HEAD_DIM)
    return t


def write_model(
    folder: Path,
    arch: str = "LlamaForCausalLM",
    tied: bool = False,
    dtype: str = "F32",
    shards: int = 1,
    tokenizer: str = "gpt-2",
    rope_scaling: dict[str, Any] | None = None,
) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """The model folder as uploaded blobs: client file name -> local path, plus the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = random_weights(arch, tied)
    config = {
        "architectures": [arch],
        "model_type": "llama" if arch == "LlamaForCausalLM" else "qwen2",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_KV,
        "num_hidden_layers": LAYERS,
        "vocab_size": VOCAB,
        "rms_norm_eps": EPS,
        "rope_theta": THETA,
        "max_position_embeddings": 256,
        "hidden_act": "silu",
        "tie_word_embeddings": tied,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "rope_scaling": rope_scaling,
    }
    files: dict[str, Path] = {}

    def blob(name: str) -> Path:
        # Blobs live under opaque names, as in the blob store: only the mapping knows the file name.
        files[name] = folder / f"blob-{len(files)}"
        return files[name]

    blob("config.json").write_text(json.dumps(config))
    build_tokenizer(blob("tokenizer.json"), tokenizer)
    tokenizer_config = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "chat_template": CHAT_TEMPLATE,
    }
    blob("tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    if dtype == "BF16":  # numpy has no bfloat16: keep the top 16 bits, as torch's truncation would
        stored = {k: (v.view(np.uint32) >> 16 << 16).view(np.float32) for k, v in weights.items()}
        save_bf16(stored, blob("model.safetensors"))
        return files, {k: v.astype(np.float64) for k, v in stored.items()}
    stored = {k: v.astype(np.float16 if dtype == "F16" else np.float32) for k, v in weights.items()}
    names = sorted(stored)
    if shards == 1:
        safetensors_numpy.save_file(stored, str(blob("model.safetensors")))
    else:
        weight_map = {}
        for s in range(shards):
            shard_name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: stored[n] for n in names[s::shards]}
            safetensors_numpy.save_file(part, str(blob(shard_name)))
            weight_map.update({n: shard_name for n in part})
        blob("model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    return files, {k: v.astype(np.float64) for k, v in stored.items()}


def save_bf16(tensors: dict[str, np.ndarray], path: Path) -> None:
    """A BF16 safetensors file written by hand (``safetensors.numpy`` cannot express bfloat16)."""
    header: dict[str, object] = {}
    data = b""
    for name, array in tensors.items():
        raw = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def llama3_inv_freq(inv: np.ndarray, s: dict[str, Any]) -> np.ndarray:
    """transformers' ``_compute_llama3_parameters``: slow frequencies divided by ``factor``."""
    wavelen = 2 * np.pi / inv
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    scaled = np.where(wavelen > low_wavelen, inv / s["factor"], inv)
    smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
        s["high_freq_factor"] - s["low_freq_factor"]
    )
    smoothed = (1 - smooth) * scaled / s["factor"] + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled)


def reference_logits(
    w: dict[str, np.ndarray], tokens: list[int], scaling: dict[str, Any] | None = None
) -> np.ndarray:
    """Hugging Face's Llama forward pass in float64 numpy, on the weights as llama.cpp stores them."""

    def f16(a: np.ndarray) -> np.ndarray:  # matrices are stored as F16 in the GGUF
        return a.astype(np.float16).astype(np.float64)

    def rms(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * g

    def rope(x: np.ndarray) -> np.ndarray:  # rotate-half convention, x: (T, heads, d)
        inv = THETA ** (-np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
        if scaling is not None:
            inv = llama3_inv_freq(inv, scaling)
        ang = np.arange(len(tokens))[:, None] * inv[None, :]
        cos, sin = (
            np.cos(np.concatenate([ang, ang], -1))[:, None],
            np.sin(np.concatenate([ang, ang], -1))[:, None],
        )
        half = HEAD_DIM // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    n = len(tokens)
    x = f16(w["model.embed_tokens.weight"])[tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q, k, v = (
            h @ f16(w[p + f"self_attn.{name}.weight"]).T + w.get(p + f"self_attn.{name}.bias", 0.0)
            for name in ("q_proj", "k_proj", "v_proj")
        )
        q = rope(q.reshape(n, N_HEAD, HEAD_DIM))
        k = np.repeat(rope(k.reshape(n, N_KV, HEAD_DIM)), N_HEAD // N_KV, axis=1)
        v = np.repeat(v.reshape(n, N_KV, HEAD_DIM), N_HEAD // N_KV, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(HEAD_DIM) + mask
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = np.einsum("hqk,khd->qhd", probs, v).reshape(n, N_HEAD * HEAD_DIM)
        x = x + attn @ f16(w[p + "self_attn.o_proj.weight"]).T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ f16(w[p + "mlp.gate_proj.weight"]).T
        up = h @ f16(w[p + "mlp.up_proj.weight"]).T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ f16(w[p + "mlp.down_proj.weight"]).T
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"]) @ f16(head).T


CASES = {
    "llama-f32-untied": dict(arch="LlamaForCausalLM", tied=False, dtype="F32", shards=1),
    "llama-f16-tied-sharded": dict(arch="LlamaForCausalLM", tied=True, dtype="F16", shards=2),
    "qwen2-f32-tied": dict(arch="Qwen2ForCausalLM", tied=True, dtype="F32", shards=1),
    "llama-bf16-untied": dict(arch="LlamaForCausalLM", tied=False, dtype="BF16", shards=1),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_converted_model_matches_numpy_reference(tmp_path: Path, case: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    files, weights = write_model(tmp_path / "upload", **CASES[case])  # type: ignore[arg-type]
    out = tmp_path / "model.gguf"
    lines: list[str] = []
    result = convert_model_dir(files, out, lines.append)

    arch = "llama" if CASES[case]["arch"] == "LlamaForCausalLM" else "qwen2"
    assert (result.architecture, result.file_type, result.is_embedding) == (arch, "F16", False)
    assert result.parameter_count == sum(v.size for v in weights.values())
    assert lines and "converting" in lines[0]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".convert-")] == []

    reader = gguf.GGUFReader(out)
    assert reader.get_field("tokenizer.chat_template").contents() == CHAT_TEMPLATE
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert ("output.weight" in types) is not CASES[case]["tied"]

    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, logits_all=True, verbose=False, seed=0)
    text = "hello world, the quick brown llama 2024"
    expected_ids = tokenizers.Tokenizer.from_file(str(files["tokenizer.json"])).encode(text).ids
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert tokens == expected_ids
    im_start = llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert im_start == [1]  # a CONTROL token, matched as one piece

    llm.eval(tokens)
    got = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
    want = reference_logits(weights, tokens)
    diff = np.abs(got - want).max()
    scale = np.abs(want).max()
    print(f"{case}: logits max-abs-diff {diff:.4g} (logit scale {scale:.3g})")
    assert diff < 0.005 * scale  # measured: about 1e-3 of the logit scale (F16 matmuls)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9

    llm.reset()
    completion = llm.create_completion(text, max_tokens=4, temperature=0.0)
    assert completion["usage"]["completion_tokens"] >= 1
    first = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert first == tokens


def test_metadata_of_a_llama_conversion(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    convert_model_dir(files, tmp_path / "m.gguf")
    fields = gguf.GGUFReader(tmp_path / "m.gguf").fields
    value = {
        k: f.contents()
        for k, f in fields.items()
        if k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")
    }
    assert value["general.architecture"] == "llama"
    assert value["llama.attention.head_count_kv"] == N_KV
    assert value["llama.rope.dimension_count"] == HEAD_DIM
    assert value["tokenizer.ggml.model"] == "gpt2" and value["tokenizer.ggml.pre"] == "gpt-2"
    assert len(fields["tokenizer.ggml.tokens"].data) == VOCAB  # padded with [PADn] up to vocab_size
    assert value["tokenizer.ggml.eos_token_id"] == 2


# --- bad input: each is a 400 with a clear message, and nothing is written -----------------------


def expect_400(files: dict[str, Path], out: Path, match: str, kind: type[BadRequest] = BadRequest) -> None:
    with pytest.raises(kind, match=match) as info:
        convert_model_dir(files, out)
    assert info.value.status == 400
    assert not out.exists()
    assert [p for p in out.parent.iterdir() if p.name.startswith(".convert-")] == []


def test_unknown_architecture_is_named(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    config = json.loads(files["config.json"].read_text())
    files["config.json"].write_text(json.dumps({**config, "architectures": ["MambaForCausalLM"]}))
    expect_400(files, tmp_path / "m.gguf", "unsupported architecture 'MambaForCausalLM'")


def test_missing_config_json(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    del files["config.json"]
    expect_400(files, tmp_path / "m.gguf", "config.json is missing")


@pytest.mark.parametrize(
    "name",
    ["../config.json", "/etc/passwd", "a/../../b", "C:/x.json", "a\\b.json", "nul\0.json", "./x", "a//b", ""],
)
def test_path_traversal_file_names(tmp_path: Path, name: str) -> None:
    files, _ = write_model(tmp_path / "upload")
    files[name] = files["config.json"]
    expect_400(files, tmp_path / "m.gguf", "invalid file name")


def test_truncated_safetensors_header(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    blob = files["model.safetensors"]
    blob.write_bytes(blob.read_bytes()[:200])  # cut inside the JSON header
    expect_400(files, tmp_path / "m.gguf", "'model.safetensors'.*past the end", InvalidModelFile)


def test_tensor_bytes_disagree_with_shape(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    blob = files["model.safetensors"]
    raw = blob.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["model.norm.weight"]["shape"] = [HIDDEN * 2]  # same bytes, twice the elements
    new = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    blob.write_bytes(raw[:8] + new + raw[8 + n :])
    expect_400(files, tmp_path / "m.gguf", "model.norm.weight.*does not match shape", InvalidModelFile)


def test_unsupported_tokenizer_and_bad_config(tmp_path: Path) -> None:
    files, _ = write_model(tmp_path / "upload")
    files["config.json"].write_text("{ not json")
    expect_400(files, tmp_path / "m.gguf", "config.json is not valid", InvalidModelFile)
    files, _ = write_model(tmp_path / "upload2")
    config = json.loads(files["config.json"].read_text())
    files["config.json"].write_text(json.dumps({**config, "hidden_size": "64"}))
    expect_400(files, tmp_path / "m.gguf", "'hidden_size' must be a positive integer", InvalidModelFile)


def test_missing_layer_tensor(tmp_path: Path) -> None:
    files, weights = write_model(tmp_path / "upload")
    del weights["model.layers.1.mlp.up_proj.weight"]
    stored = {k: v.astype(np.float32) for k, v in weights.items()}
    safetensors_numpy.save_file(stored, str(files["model.safetensors"]))
    expect_400(files, tmp_path / "m.gguf", r"lacks blk\.1\.ffn_up\.weight", InvalidModelFile)


def test_unexpected_tensor_is_named(tmp_path: Path) -> None:
    files, weights = write_model(tmp_path / "upload")
    stored = {k: v.astype(np.float32) for k, v in weights.items()}
    stored["model.layers.7.self_attn.q_proj.weight"] = stored["model.layers.0.self_attn.q_proj.weight"]
    safetensors_numpy.save_file(stored, str(files["model.safetensors"]))
    expect_400(
        files, tmp_path / "m.gguf", "'model.layers.7.self_attn.q_proj.weight' is not part of a llama model"
    )


@pytest.mark.parametrize("style", ["gpt-2", "smollm", "llama-bpe"])
def test_tokenization_matches_the_original_tokenizer(tmp_path: Path, style: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    files, _ = write_model(tmp_path / "upload", tokenizer=style)
    convert_model_dir(files, tmp_path / "m.gguf")
    assert gguf.GGUFReader(tmp_path / "m.gguf").get_field("tokenizer.ggml.pre").contents() == style
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m.gguf"), n_ctx=64, vocab_only=True, verbose=False)
    original = tokenizers.Tokenizer.from_file(str(files["tokenizer.json"]))
    for text in [
        "hello world, the quick brown llama",
        "I'm 12345 years old\n\nand it's 3.14!  Yes   ",
        "don't STOP'LL we've",
        "naïve café — 東京 🦙",
    ]:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == original.encode(text).ids, text


def test_llama3_rope_scaling_matches_reference(tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    # A tiny original context so the scaling changes most frequencies within a short prompt.
    scaling = {
        "rope_type": "llama3",
        "factor": 4.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    files, weights = write_model(tmp_path / "upload", rope_scaling=scaling)
    convert_model_dir(files, tmp_path / "m.gguf")
    assert "rope_freqs.weight" in {t.name for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m.gguf"), n_ctx=64, logits_all=True, verbose=False)
    tokens = llm.tokenize(b"hello world, the quick brown llama 2024 and more words", add_bos=False)
    llm.eval(tokens)
    got = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
    want = reference_logits(weights, tokens, scaling)
    unscaled = reference_logits(weights, tokens)
    assert np.abs(got - want).max() < 0.005 * np.abs(want).max()
    assert np.abs(got - unscaled).max() > 10 * np.abs(got - want).max()  # the scaling is really applied
