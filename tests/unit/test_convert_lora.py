"""``convert/lora.py`` on its own: which rows it permutes for which base architecture.

A ``llama`` GGUF has its Q/K rows in llama.cpp's interleaved order, so ``lora_B`` of Q and K is
permuted the same way (per head: K with the KV head count); a ``qwen2`` GGUF keeps Hugging Face's
order, so nothing moves. The end-to-end check (greedy output of the converted adapter equal to the
GGUF one) is ``tests/api/test_lora_peft.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from adapter_ggufs import write_peft_adapter
from skyllama.convert.lora import convert_adapter
from skyllama.errors import BadRequest
from skyllama.gguf_info import GGUFInfo, TensorInfo

HIDDEN, N_HEAD, N_KV, HEAD_DIM, RANK = 32, 4, 2, 8, 2
SHAPES = {"attn_q": (HIDDEN, N_HEAD * HEAD_DIM), "attn_k": (HIDDEN, N_KV * HEAD_DIM), "attn_v": (HIDDEN, N_KV * HEAD_DIM)}
HF = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj"}


def base(arch: str) -> GGUFInfo:
    tensors = [TensorInfo(f"blk.0.{t}.weight", ne, "F16", 0, 0) for t, ne in SHAPES.items()]
    return GGUFInfo(3, {"general.architecture": arch, f"{arch}.attention.head_count": N_HEAD,
                        f"{arch}.attention.head_count_kv": N_KV, f"{arch}.block_count": 1}, tensors=tensors)


def peft(tmp_path: Path) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    tensors = {}
    for target, (n_in, n_out) in SHAPES.items():
        stem = f"base_model.model.model.layers.0.self_attn.{HF[target]}"
        tensors[f"{stem}.lora_A.weight"] = rng.standard_normal((RANK, n_in)).astype(np.float16)
        tensors[f"{stem}.lora_B.weight"] = rng.standard_normal((n_out, RANK)).astype(np.float16)
    folder = write_peft_adapter(tmp_path / "peft", tensors, rank=RANK, alpha=4)
    return {p.name: p for p in folder.iterdir()}, tensors


def interleave(rows: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows [x0..x(d/2-1), y0..y(d/2-1)] -> [x0, y0, x1, y1, ...], written out by hand."""
    d = rows.shape[0] // heads
    order = [h * d + (i // 2) + (d // 2) * (i % 2) for h in range(heads) for i in range(d)]
    return rows[order]


def converted(tmp_path: Path, arch: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    files, tensors = peft(tmp_path)
    out = tmp_path / f"{arch}.gguf"
    assert convert_adapter(files, base(arch), out) == 6
    reader = GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.lora.alpha"].contents() == 4.0
    assert all(t.tensor_type.name == "F16" for t in reader.tensors)
    return {t.name: np.array(t.data) for t in reader.tensors}, tensors


def hf(tensors: dict[str, np.ndarray], target: str, half: str) -> np.ndarray:
    return tensors[f"base_model.model.model.layers.0.self_attn.{HF[target]}.lora_{half}.weight"]


def test_llama_permutes_lora_b_of_q_and_k_per_head(tmp_path: Path) -> None:
    got, src = converted(tmp_path, "llama")
    for target in SHAPES:
        assert np.array_equal(got[f"blk.0.{target}.weight.lora_a"], hf(src, target, "A"))  # never moved
    assert np.array_equal(got["blk.0.attn_q.weight.lora_b"], interleave(hf(src, "attn_q", "B"), N_HEAD))
    assert np.array_equal(got["blk.0.attn_k.weight.lora_b"], interleave(hf(src, "attn_k", "B"), N_KV))
    assert np.array_equal(got["blk.0.attn_v.weight.lora_b"], hf(src, "attn_v", "B"))


def test_qwen2_keeps_hugging_face_order(tmp_path: Path) -> None:
    got, src = converted(tmp_path, "qwen2")
    for target in SHAPES:
        assert np.array_equal(got[f"blk.0.{target}.weight.lora_b"], hf(src, target, "B"))


def test_other_architectures_and_failures_leave_no_file(tmp_path: Path) -> None:
    files, _ = peft(tmp_path)
    with pytest.raises(BadRequest, match="for a 'gemma2' model is not supported"):
        convert_adapter(files, base("gemma2"), tmp_path / "out.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peft"]
