"""Tiny GGUF files for tests, written with the ``gguf`` package's own writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, PoolingType


def write_tiny_gguf(path: Path, *, arch: str = "llama", seed: int = 0, embedding: bool = False,
                    chat_template: str | None = None) -> Path:
    """A structurally valid GGUF (a few small F32 tensors); not meant to be run by llama.cpp."""
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{arch}-{seed}")
    writer.add_context_length(256)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_file_type(LlamaFileType.ALL_F32)
    if embedding:
        writer.add_pooling_type(PoolingType.MEAN)
    if chat_template:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", rng.standard_normal((16, 32), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
