"""The Llama family (Llama, SmolLM2, Qwen2) to GGUF arch ``llama`` / ``qwen2``.

Mirrors llama.cpp's ``LlamaModel`` / ``Qwen2Model`` converters for the common case: a byte-level
BPE tokenizer from tokenizer.json, RMSNorm, RoPE, grouped-query attention, a SwiGLU MLP and a
tied or separate output head. For ``llama`` the Q and K projections are permuted from Hugging
Face's rotate-half RoPE layout into the interleaved layout llama.cpp applies RoPE in; Qwen2 GGUFs
keep Hugging Face's layout (llama.cpp runs them with NEOX-style RoPE).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gguf
import numpy as np

from skyllama.convert.hf_model import (
    HFModel,
    PlannedTensor,
    add_special_vocab,
    padded_vocabulary,
    plan_mapped,
)
from skyllama.convert.safetensors_reader import Checkpoint
from skyllama.errors import BadRequest, InvalidModelFile

HF_ARCHITECTURES = {
    "LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2,
}

# Hugging Face pre-tokenizer regexes -> llama.cpp's name for the same split (llama-vocab.cpp).
_SPLIT_PATTERNS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",  # noqa: E501
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",  # noqa: E501
}


_BLOCK_TENSORS = (
    gguf.MODEL_TENSOR.ATTN_NORM,
    gguf.MODEL_TENSOR.ATTN_Q,
    gguf.MODEL_TENSOR.ATTN_K,
    gguf.MODEL_TENSOR.ATTN_V,
    gguf.MODEL_TENSOR.ATTN_OUT,
    gguf.MODEL_TENSOR.FFN_NORM,
    gguf.MODEL_TENSOR.FFN_GATE,
    gguf.MODEL_TENSOR.FFN_UP,
    gguf.MODEL_TENSOR.FFN_DOWN,
)
REQUIRED = ((gguf.MODEL_TENSOR.TOKEN_EMBD, gguf.MODEL_TENSOR.OUTPUT_NORM), _BLOCK_TENSORS)
"""(model-wide, per-block) tensors a checkpoint must have; llama.cpp refuses to load without them."""


def arch_for(hf_architecture: str) -> gguf.MODEL_ARCH:
    return HF_ARCHITECTURES[hf_architecture]


def _dims(model: HFModel) -> tuple[int, int, int, int]:
    """(n_head, n_head_kv, head_dim, hidden_size), checked for consistency."""
    hidden = model.int_param("hidden_size")
    n_head = model.int_param("num_attention_heads")
    n_head_kv = model.int_param("num_key_value_heads", default=n_head)
    if "head_dim" not in model.config and hidden % n_head != 0:
        raise InvalidModelFile("config.json: hidden_size must be a multiple of num_attention_heads")
    head_dim = model.int_param("head_dim", default=hidden // n_head)
    if n_head % n_head_kv != 0:
        raise InvalidModelFile("config.json: num_attention_heads must be a multiple of num_key_value_heads")
    if head_dim % 2 != 0:
        raise InvalidModelFile("config.json: the attention head size must be even for RoPE")
    return n_head, n_head_kv, head_dim, hidden


def _rope(model: HFModel) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, scaling parameters or None); transformers 5 nests both in rope_parameters."""
    params = model.config.get("rope_parameters") or model.config.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise InvalidModelFile("config.json: rope_scaling must be an object")
    theta = params.get("rope_theta", model.config.get("rope_theta", 10000.0))
    if isinstance(theta, bool) or not isinstance(theta, int | float) or theta <= 0:
        raise InvalidModelFile("config.json: rope_theta must be a positive number")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind in (None, "default"):
        return float(theta), None
    if kind not in ("linear", "llama3"):
        raise BadRequest(f"unsupported rope scaling {kind!r}; only linear and llama3 convert")
    return float(theta), params


def add_metadata(writer: gguf.GGUFWriter, model: HFModel) -> None:
    """Hyperparameters (as ``TextModel.set_gguf_parameters`` writes them) and the BPE vocabulary."""
    n_head, n_head_kv, head_dim, hidden = _dims(model)
    writer.add_vocab_size(model.int_param("vocab_size"))
    writer.add_block_count(model.int_param("num_hidden_layers"))
    writer.add_context_length(model.int_param("max_position_embeddings", default=4096))
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(model.int_param("intermediate_size"))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(model.float_param("rms_norm_eps", 1e-6))
    if "head_dim" in model.config:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    theta, scaling = _rope(model)
    writer.add_rope_freq_base(theta)
    if scaling is not None and scaling.get("rope_type", scaling.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling.get("factor", 1.0)))
    if model.config.get("hidden_act", "silu") != "silu":
        raise BadRequest(f"unsupported activation {model.config.get('hidden_act')!r}; only silu converts")
    _add_vocab(writer, model)


def _pre_tokenizer_name(pre: Any) -> str:
    """llama.cpp's pre-tokenizer name for tokenizer.json's ``pre_tokenizer``.

    llama.cpp's converter hashes the encoding of a test text with ``transformers``; without that
    dependency the few layouts this converter supports are recognised from their definition.
    """
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    kinds = [s.get("type") for s in steps if isinstance(s, dict)]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds and kinds[0] == "Split" and kinds[-1] == "ByteLevel":
        pattern = steps[0].get("pattern", {})
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if regex in _SPLIT_PATTERNS:
            return _SPLIT_PATTERNS[regex]
    raise BadRequest(
        f"unsupported tokenizer pre-tokenizer {kinds!r}; byte-level BPE of GPT-2, Llama 3, "
        "Qwen2 or SmolLM style converts"
    )


def _add_vocab(writer: gguf.GGUFWriter, model: HFModel) -> None:
    tokenizer = model.json("tokenizer.json")
    bpe = tokenizer.get("model") if isinstance(tokenizer, dict) else None
    if not isinstance(bpe, dict) or bpe.get("type") != "BPE" or bpe.get("byte_fallback"):
        raise BadRequest("unsupported tokenizer: only byte-level BPE tokenizer.json files convert")
    try:
        vocab = gguf.BpeVocab(model.stage)
        tokens = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t, _, _ in vocab.all_tokens()]
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise InvalidModelFile("tokenizer.json could not be read as a byte-level BPE vocabulary") from e
    vocab_size = model.int_param("vocab_size")
    tokens, types = padded_vocabulary(tokens, tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tokenizer.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if model.has("tokenizer_config.json"):
        tokenizer_config = model.json("tokenizer_config.json")
        if isinstance(tokenizer_config, dict) and isinstance(tokenizer_config.get("add_prefix_space"), bool):
            writer.add_add_space_prefix(tokenizer_config["add_prefix_space"])
    add_special_vocab(writer, model, len(tokens), load_merges=True)


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder each head's rows from rotate-half (HF) to interleaved pairs (llama.cpp ``llama``).

    Same as ``LlamaModel.permute`` in llama.cpp's converter: within a head, rows
    ``[x0..x(d/2-1), y0..y(d/2-1)]`` become ``[x0, y0, x1, y1, ...]``.
    """
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _llama3_rope_factors(model: HFModel, scaling: dict[str, Any], head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's RoPE scaling (``generate_extra_tensors`` upstream)."""
    theta, _ = _rope(model)
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            factors.append(1.0)
        elif wavelen > old_ctx / low:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def plan_tensors(checkpoint: Checkpoint, model: HFModel) -> Iterator[PlannedTensor]:
    """The decoder's tensors under GGUF names; Q/K permuted for ``llama``."""
    arch = arch_for(model.architecture)
    n_head, n_head_kv, head_dim, _ = _dims(model)
    permute = arch == gguf.MODEL_ARCH.LLAMA
    heads = {"q_proj": n_head, "k_proj": n_head_kv}

    for name in checkpoint.names():
        proj = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        if permute and proj in heads and checkpoint.info(name).shape[0] != heads[proj] * head_dim:
            raise InvalidModelFile(
                f"tensor {name!r} has {checkpoint.info(name).shape[0]} rows; config.json implies "
                f"{heads[proj] * head_dim}"
            )

    def transform(name: str, array: np.ndarray) -> np.ndarray:
        proj = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        if permute and proj in heads:
            return permute_qk(np.asarray(array), heads[proj])
        return array

    def rename(name: str) -> str | None:
        return None if name.endswith(".rotary_emb.inv_freq") else name

    _, scaling = _rope(model)
    if scaling is not None and scaling.get("rope_type") == "llama3":
        factors = _llama3_rope_factors(model, scaling, head_dim)
        yield PlannedTensor(
            gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
            factors.shape,
            gguf.GGMLQuantizationType.F32,
            lambda: factors,
        )
    yield from plan_mapped(checkpoint, arch, model.int_param("num_hidden_layers"), rename, transform)
