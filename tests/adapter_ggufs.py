"""Tiny LoRA adapters for the demo SmolLM2, written with the ``gguf`` package in milliseconds.

The tensors are random low-rank pairs shaped from the base model's own header, named and keyed as
llama.cpp's ``convert_lora_to_gguf.py`` writes them (``general.type`` ``adapter``, ``adapter.type``
``lora``, ``adapter.lora.alpha``, ``<tensor>.lora_a`` ``[n_in, r]`` / ``.lora_b`` ``[r, n_out]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter

TARGETS = ("attn_q", "attn_v", "ffn_down")


def base_shapes(base: Path) -> dict[str, tuple[int, int]]:
    """``ne`` (gguf order: inputs first) of every 2-D tensor of ``base``."""
    return {t.name: (int(t.shape[0]), int(t.shape[1])) for t in GGUFReader(str(base)).tensors if len(t.shape) == 2}


def write_lora_gguf(path: Path, base: Path, *, seed: int = 0, rank: int = 8, layers: int = 4,
                    arch: str = "llama", alpha: float = 16.0, std: float = 0.1,
                    kind: str = "adapter", wrong_shape: bool = False, extra: str | None = None) -> Path:
    """A LoRA for ``base`` on the first ``layers`` blocks' :data:`TARGETS`. ``wrong_shape`` gives
    one ``lora_b`` a row too many; ``extra`` adds a pair for a tensor the base lacks."""
    rng = np.random.default_rng(seed)
    shapes = base_shapes(base)
    writer = GGUFWriter(str(path), arch)
    writer.add_type(kind)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    names = [f"blk.{i}.{t}.weight" for i in range(layers) for t in TARGETS] + ([extra] if extra else [])
    for n, name in enumerate(names):
        n_in, n_out = shapes.get(name, (64, 64))
        if wrong_shape and n == 0:
            n_out += 1
        # numpy shapes are gguf's ne reversed: lora_a ne [n_in, r], lora_b ne [r, n_out]
        writer.add_tensor(f"{name}.lora_a", (rng.standard_normal((rank, n_in)) * std).astype(np.float32))
        writer.add_tensor(f"{name}.lora_b", (rng.standard_normal((n_out, rank)) * std).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
