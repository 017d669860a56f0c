"""A tiny vision projector and tiny images for tests, generated in milliseconds.

The projector is a LLaVA-style ``mlp`` mmproj with random weights: a one-block CLIP ViT over a
28 x 28 image in 14-pixel patches (4 image tokens) and a two-layer MLP whose output width is the
text model's ``n_embd``, with the keys and tensor names llama.cpp's ``clip`` loader reads
(``tools/mtmd/clip-impl.h``: ``clip.projector_type``, ``clip.vision.*``, ``v.patch_embd``,
``v.blk.N.attn_q``..., ``mm.0``/``mm.2``). It means nothing, but every image gives its own
embeddings, so an image changes the answer deterministically.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
from gguf import GGUFWriter


def write_projector(path: Path, *, n_embd_text: int = 576, seed: int = 0, image_size: int = 28, patch: int = 14,
                    hidden: int = 32, heads: int = 2, ff: int = 64, proj_hidden: int = 64,
                    projection_dim: int | None = None) -> Path:
    """An mmproj GGUF for a text model ``n_embd_text`` wide (SmolLM2-135M: 576)."""
    rng = np.random.default_rng(seed)

    def rand(*shape: int, std: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    w = GGUFWriter(str(path), "clip")
    w.add_type("mmproj")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", hidden)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.projection_dim", projection_dim or n_embd_text)
    w.add_uint32("clip.vision.attention.head_count", heads)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    ones, zeros = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
    # numpy shapes are gguf's ne reversed: patch_embd ne [patch, patch, 3, hidden]
    w.add_tensor("v.class_embd", rand(hidden))
    w.add_tensor("v.patch_embd.weight", rand(hidden, 3, patch, patch, std=0.05))
    w.add_tensor("v.position_embd.weight", rand((image_size // patch) ** 2 + 1, hidden))
    w.add_tensor("v.pre_ln.weight", ones)
    w.add_tensor("v.pre_ln.bias", zeros)
    for t in ("attn_q", "attn_k", "attn_v", "attn_out"):
        w.add_tensor(f"v.blk.0.{t}.weight", rand(hidden, hidden))
        w.add_tensor(f"v.blk.0.{t}.bias", rand(hidden))
    for t in ("ln1", "ln2"):
        w.add_tensor(f"v.blk.0.{t}.weight", ones)
        w.add_tensor(f"v.blk.0.{t}.bias", zeros)
    w.add_tensor("v.blk.0.ffn_up.weight", rand(ff, hidden))
    w.add_tensor("v.blk.0.ffn_up.bias", rand(ff))
    w.add_tensor("v.blk.0.ffn_down.weight", rand(hidden, ff))
    w.add_tensor("v.blk.0.ffn_down.bias", rand(hidden))
    w.add_tensor("mm.0.weight", rand(proj_hidden, hidden))
    w.add_tensor("mm.0.bias", rand(proj_hidden))
    w.add_tensor("mm.2.weight", rand(n_embd_text, proj_hidden, std=0.5))
    w.add_tensor("mm.2.bias", rand(n_embd_text))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def png(width: int = 28, height: int = 28, seed: int = 0) -> bytes:
    """An RGB PNG of random pixels (zlib and the PNG chunk layout; no imaging library)."""
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
