"""Tiny LoRA adapters for the demo SmolLM2, written with the ``gguf`` package in milliseconds.

The tensors are random low-rank pairs shaped from the base model's own header, named and keyed as
llama.cpp's ``convert_lora_to_gguf.py`` writes them (``general.type`` ``adapter``, ``adapter.type``
``lora``, ``adapter.lora.alpha``, ``<tensor>.lora_a`` ``[n_in, r]`` / ``.lora_b`` ``[r, n_out]``).

:func:`write_peft_adapter` writes the same pairs as Hugging Face PEFT saves them
(``adapter_config.json`` + ``adapter_model.safetensors``): HF module names, ``lora_A`` numpy
``[r, in]`` and ``lora_B`` ``[out, r]`` (the very bytes of GGUF's ``ne [in, r]`` / ``[r, out]``),
and the Q/K rows of ``lora_B`` in Hugging Face's rotate-half order, which llama.cpp's converter
permutes into the interleaved order of the ``llama`` GGUF (as it does the base weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter
from safetensors.numpy import save_file

TARGETS = ("attn_q", "attn_v", "ffn_down")
ALL_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
HF_MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}


def base_shapes(base: Path) -> dict[str, tuple[int, int]]:
    """``ne`` (gguf order: inputs first) of every 2-D tensor of ``base``."""
    return {t.name: (int(t.shape[0]), int(t.shape[1])) for t in GGUFReader(str(base)).tensors if len(t.shape) == 2}


def write_lora_gguf(path: Path, base: Path, *, seed: int = 0, rank: int = 8, layers: int = 4,
                    arch: str = "llama", alpha: float = 16.0, std: float = 0.1,
                    kind: str = "adapter", wrong_shape: bool = False, extra: str | None = None,
                    targets: tuple[str, ...] = TARGETS, dtype: type = np.float32) -> Path:
    """A LoRA for ``base`` on the first ``layers`` blocks' ``targets``. ``wrong_shape`` gives
    one ``lora_b`` a row too many; ``extra`` adds a pair for a tensor the base lacks."""
    rng = np.random.default_rng(seed)
    shapes = base_shapes(base)
    writer = GGUFWriter(str(path), arch)
    writer.add_type(kind)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    names = [f"blk.{i}.{t}.weight" for i in range(layers) for t in targets] + ([extra] if extra else [])
    for n, name in enumerate(names):
        n_in, n_out = shapes.get(name, (64, 64))
        if wrong_shape and n == 0:
            n_out += 1
        # numpy shapes are gguf's ne reversed: lora_a ne [n_in, r], lora_b ne [r, n_out]
        writer.add_tensor(f"{name}.lora_a", (rng.standard_normal((rank, n_in)) * std).astype(np.float32).astype(dtype))
        writer.add_tensor(f"{name}.lora_b", (rng.standard_normal((n_out, rank)) * std).astype(np.float32).astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def hf_row_order(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's interleaved Q/K rows back to Hugging Face's rotate-half order: within each head,
    ``[x0, y0, x1, y1, ...]`` becomes ``[x0, x1, ..., y0, y1, ...]`` (the inverse of its permute)."""
    n = rows.shape[0]
    return rows.reshape(heads, n // heads // 2, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def peft_tensors(lora: Path, base: Path) -> dict[str, np.ndarray]:
    """The GGUF LoRA at ``lora`` as PEFT names and layout (``lora_B`` of Q/K in HF row order)."""
    fields = GGUFReader(str(base)).fields
    heads = {"attn_q": int(fields["llama.attention.head_count"].contents()),
             "attn_k": int(fields["llama.attention.head_count_kv"].contents())}
    out: dict[str, np.ndarray] = {}
    for t in GGUFReader(str(lora)).tensors:
        target, side = t.name.rsplit(".", 1)  # blk.N.attn_q.weight, lora_a
        _, block, kind, _ = target.split(".")
        data = np.array(t.data)  # numpy order: lora_a [r, in], lora_b [out, r]
        if side == "lora_b" and kind in heads:
            data = hf_row_order(data, heads[kind])
        half = "A" if side == "lora_a" else "B"
        out[f"base_model.model.model.layers.{block}.{HF_MODULES[kind]}.lora_{half}.weight"] = data
    return out


def write_peft_adapter(folder: Path, tensors: dict[str, np.ndarray], *, rank: int = 8, alpha: float = 16.0,
                       config: dict[str, object] | None = None) -> Path:
    """``folder`` with ``adapter_config.json`` (PEFT's keys; ``config`` adds or overrides) and
    ``adapter_model.safetensors`` holding ``tensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    modules = sorted({name.split(".")[-3] for name in tensors})
    document = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M",
                "r": rank, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none", "use_dora": False,
                "use_rslora": False, "fan_in_fan_out": False, "modules_to_save": None, "rank_pattern": {},
                "alpha_pattern": {}, "target_modules": modules, **(config or {})}
    (folder / "adapter_config.json").write_text(json.dumps(document))
    save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()},
              str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return folder
