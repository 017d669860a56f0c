"""BERT-family sentence encoders (e.g. all-MiniLM-L6-v2) to GGUF arch ``bert``.

Mirrors llama.cpp's ``BertModel`` converter: a WordPiece vocabulary rewritten to llama.cpp's
"phantom space" spelling, token-type embeddings, and the pooling type read from the
sentence-transformers ``modules.json`` / ``1_Pooling/config.json``. Normalisation is not stored
in the GGUF: like Ollama, the embed endpoint normalises the pooled vector.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gguf

from skyllama.convert.hf_model import (
    HFModel,
    PlannedTensor,
    add_special_vocab,
    padded_vocabulary,
    plan_mapped,
)
from skyllama.convert.safetensors_reader import Checkpoint
from skyllama.errors import BadRequest

ARCH = gguf.MODEL_ARCH.BERT
HF_ARCHITECTURES = ("BertModel", "BertForMaskedLM")

REQUIRED = (
    (
        gguf.MODEL_TENSOR.TOKEN_EMBD,
        gguf.MODEL_TENSOR.TOKEN_TYPES,
        gguf.MODEL_TENSOR.POS_EMBD,
        gguf.MODEL_TENSOR.TOKEN_EMBD_NORM,
    ),
    (
        gguf.MODEL_TENSOR.ATTN_Q,
        gguf.MODEL_TENSOR.ATTN_K,
        gguf.MODEL_TENSOR.ATTN_V,
        gguf.MODEL_TENSOR.ATTN_OUT,
        gguf.MODEL_TENSOR.ATTN_OUT_NORM,
        gguf.MODEL_TENSOR.FFN_UP,
        gguf.MODEL_TENSOR.FFN_DOWN,
        gguf.MODEL_TENSOR.LAYER_OUT_NORM,
    ),
)
"""(model-wide, per-block) tensors a checkpoint must have; llama.cpp refuses to load without them."""

_POOLING = {
    "pooling_mode_mean_tokens": gguf.PoolingType.MEAN,
    "pooling_mode_cls_token": gguf.PoolingType.CLS,
    "pooling_mode_lasttoken": gguf.PoolingType.LAST,
}


def add_metadata(writer: gguf.GGUFWriter, model: HFModel) -> None:
    """Hyperparameters, pooling type and the WordPiece vocabulary."""
    writer.add_block_count(model.int_param("num_hidden_layers"))
    writer.add_context_length(model.int_param("max_position_embeddings"))
    writer.add_embedding_length(model.int_param("hidden_size"))
    writer.add_feed_forward_length(model.int_param("intermediate_size"))
    writer.add_head_count(model.int_param("num_attention_heads"))
    writer.add_layer_norm_eps(model.float_param("layer_norm_eps", 1e-12))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling_type(model))
    if model.config.get("hidden_act", "gelu") != "gelu":
        raise BadRequest(
            f"unsupported BERT activation {model.config.get('hidden_act')!r}; only gelu converts"
        )
    if model.config.get("position_embedding_type", "absolute") != "absolute":
        raise BadRequest("unsupported BERT position_embedding_type; only absolute converts")
    _add_vocab(writer, model)


def pooling_type(model: HFModel) -> gguf.PoolingType:
    """The sentence-transformers pooling mode; plain BERT checkpoints get mean pooling."""
    if not model.has("modules.json"):
        return gguf.PoolingType.MEAN
    modules = model.json("modules.json")
    paths = [
        m.get("path")
        for m in (modules if isinstance(modules, list) else [])
        if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")
    ]
    if not paths or not isinstance(paths[0], str):
        return gguf.PoolingType.MEAN
    config = model.json(f"{paths[0]}/config.json" if paths[0] else "config.json")
    for key, kind in _POOLING.items():
        if isinstance(config, dict) and config.get(key):
            return kind
    raise BadRequest("unsupported sentence-transformers pooling mode; only mean, cls and last token convert")


def _wordpiece_tokens(model: HFModel) -> tuple[list[str], dict[str, Any]]:
    """Tokens by id from tokenizer.json's WordPiece model, or from vocab.txt."""
    if model.has("tokenizer.json"):
        tokenizer = model.json("tokenizer.json")
        wp = tokenizer.get("model") if isinstance(tokenizer, dict) else None
        if not isinstance(wp, dict) or wp.get("type") != "WordPiece" or not isinstance(wp.get("vocab"), dict):
            raise BadRequest("unsupported BERT tokenizer: tokenizer.json must hold a WordPiece model")
        by_id = {i: t for t, i in wp["vocab"].items() if isinstance(i, int)}
        return [by_id.get(i, f"[PAD{i}]") for i in range(max(by_id, default=-1) + 1)], tokenizer
    if model.has("vocab.txt"):
        return (model.stage / "vocab.txt").read_text(encoding="utf-8").splitlines(), {}
    raise BadRequest("a BERT model needs tokenizer.json or vocab.txt")


def _add_vocab(writer: gguf.GGUFWriter, model: HFModel) -> None:
    tokens, tokenizer = _wordpiece_tokens(model)
    vocab_size = model.int_param("vocab_size", default=len(tokens))
    tokens, types = padded_vocabulary(tokens, tokenizer, vocab_size)

    # llama.cpp's WordPiece tokenizer expects word starts marked with U+2581 and continuations
    # without their "##" (the "phantom space" spelling of convert_hf_to_gguf.py).
    def phantom(token: str, kind: gguf.TokenType) -> str:
        if kind == gguf.TokenType.CONTROL:
            return token
        return token[2:] if token.startswith("##") else "\u2581" + token

    writer.add_token_type_count(model.int_param("type_vocab_size", default=1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([phantom(t, k) for t, k in zip(tokens, types, strict=True)])
    writer.add_token_types(types)
    add_special_vocab(writer, model, len(tokens), load_merges=False)


def _rename(name: str) -> str | None:
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    if name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    # Only the encoder is needed for embeddings: drop the pooler and the pre-training heads.
    if name == "embeddings.position_ids" or name.startswith(("pooler.", "cls.")):
        return None
    return name


def plan_tensors(checkpoint: Checkpoint, model: HFModel) -> Iterator[PlannedTensor]:
    """Every encoder tensor under its GGUF name, unchanged apart from the storage type."""
    return plan_mapped(checkpoint, ARCH, model.int_param("num_hidden_layers"), _rename)
