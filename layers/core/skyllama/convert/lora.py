"""Hugging Face PEFT LoRA adapters (``adapter_config.json`` + ``adapter_model.safetensors``) to a
GGUF LoRA, as Ollama's ``ConvertAdapter`` (``convert/convert_llama_adapter.go``) and llama.cpp's
``convert_lora_to_gguf.py`` write it: ``general.type`` ``adapter``, ``adapter.type`` ``lora``,
``adapter.lora.alpha`` from ``lora_alpha``, F16 tensors ``blk.N.<tensor>.weight.lora_a``/``_b``.

PEFT stores ``lora_A`` as numpy ``[r, in]`` and ``lora_B`` as ``[out, r]``; GGUF's ``lora_a``
``ne [in, r]`` and ``lora_b`` ``ne [r, out]`` are the same bytes, so nothing is transposed. The
base ``llama`` GGUF has its Q and K rows permuted from Hugging Face's rotate-half order
(``llama.permute_qk``); ``W + B·A`` stays consistent only if B's rows get the same permutation,
which is what llama.cpp's converter does (its ``LoraTorchTensor`` applies the model's
``modify_tensors`` permute to B). Ollama's Go converter permutes ``lora_a`` instead, which does
not match its own base weights; this follows llama.cpp.

Only what llama.cpp can apply as given converts: plain LoRA on the seven attention and MLP
projections, one ``lora_alpha``. Everything else (DoRA, rsLoRA, per-module ranks or alphas,
biases, saved modules, other targets) is a 400 before anything is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from skyllama.convert.gguf_file import gguf_written
from skyllama.convert.llama import permute_qk
from skyllama.convert.safetensors_reader import Checkpoint, open_checkpoint
from skyllama.errors import BadRequest, InvalidModelFile
from skyllama.filenames import validate_file_name
from skyllama.gguf_info import GGUFInfo

CONFIG_NAME = "adapter_config.json"
MAX_CONFIG_BYTES = 1024 * 1024
# GGUF architecture -> whether its converter permuted Q/K rows (llama.cpp's Qwen2 keeps HF order).
ARCHITECTURES = {"llama": True, "qwen2": False}
# PEFT module path (HF Llama naming) -> GGUF tensor, as Ollama's llamaAdapter.Replacements.
MODULES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TARGET_MODULES = {path.rsplit(".", 1)[1] for path in MODULES}
_NAME = re.compile(
    r"(?:base_model\.model\.)?model\.layers\.(\d{1,6})\.(" + "|".join(re.escape(m) for m in MODULES)
    + r")\.lora_([AB])\.weight"
)
_DTYPES = {"F32", "F16", "BF16"}
# adapter_config.json switches that change the maths beyond B·A·alpha/r: refused, not ignored.
_UNSUPPORTED = {
    "use_dora": "DoRA adapters (use_dora)",
    "use_rslora": "rank-stabilised LoRA (use_rslora)",
    "fan_in_fan_out": "fan_in_fan_out weights",
    "modules_to_save": "adapters with modules_to_save (full copies of base tensors)",
    "rank_pattern": "per-module ranks (rank_pattern)",
    "alpha_pattern": "per-module alphas (alpha_pattern)",
}


@dataclass(frozen=True)
class LoraPair:
    """One adapted base tensor: its GGUF name, the two safetensors names, and the rank."""

    target: str
    a: str
    b: str
    rank: int


@dataclass(frozen=True)
class AdapterPlan:
    """A checked PEFT adapter: ``alpha`` for the GGUF key, and its pairs in a stable order."""

    alpha: float
    pairs: list[LoraPair]
    checkpoint: Checkpoint


def _fail(problem: str) -> InvalidModelFile:
    return InvalidModelFile(f"safetensors adapter: {problem}")


def read_config(path: Path) -> tuple[float, int | None]:
    """``(lora_alpha, r)`` from ``adapter_config.json``, refusing what cannot be converted."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise _fail(f"{CONFIG_NAME} is larger than {MAX_CONFIG_BYTES} bytes")
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _fail(f"{CONFIG_NAME} is not valid UTF-8 JSON") from None
    if not isinstance(config, dict):
        raise _fail(f"{CONFIG_NAME} is not a JSON object")
    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise BadRequest(f"safetensors adapter: only LoRA adapters convert (peft_type {str(kind)[:40]!r})")
    for key, what in _UNSUPPORTED.items():
        if config.get(key):
            raise BadRequest(f"safetensors adapter: {what} are not supported")
    if config.get("bias", "none") not in (None, "none"):
        raise BadRequest(f"safetensors adapter: LoRA biases (bias {str(config.get('bias'))[:40]!r}) are not supported")
    _check_targets(config.get("target_modules"))
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1e9:
        raise _fail(f"{CONFIG_NAME} needs lora_alpha, a positive number")
    rank = config.get("r")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0):
        raise _fail(f"{CONFIG_NAME}: r must be a positive integer")
    return float(alpha), rank


def _check_targets(targets: Any) -> None:
    if targets is None or isinstance(targets, str):  # a regex or "all-linear": the tensors decide
        return
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise _fail(f"{CONFIG_NAME}: target_modules must be a list of module names")
    unknown = sorted(set(targets) - TARGET_MODULES)
    if unknown:
        raise BadRequest(f"safetensors adapter: target module {unknown[0][:60]!r} is not supported; "
                         f"supported: {', '.join(sorted(TARGET_MODULES))}")


def plan_adapter(files: Mapping[str, Path], base: GGUFInfo | None) -> AdapterPlan:
    """Check the PEFT adapter in ``files`` (client name -> local path) without reading its weights.

    With ``base`` (the GGUF it will be applied to) also its architecture, block indices and every
    shape; without (weights converted in the same create) only the adapter's own consistency.
    """
    for name in files:
        validate_file_name(name)
    if CONFIG_NAME not in files:
        raise BadRequest(f"safetensors adapter: {CONFIG_NAME} is missing (a PEFT adapter is "
                         f"{CONFIG_NAME} and adapter_model.safetensors)")
    alpha, config_rank = read_config(files[CONFIG_NAME])
    if not any(n.endswith(".safetensors") and "/" not in n for n in files):
        raise BadRequest("safetensors adapter: adapter_model.safetensors is missing")
    checkpoint = open_checkpoint({n: p for n, p in files.items() if n.endswith(".safetensors")})
    halves: dict[str, dict[str, str]] = {}
    for name in checkpoint.names():
        match = _NAME.fullmatch(name)
        if match is None:
            raise BadRequest(f"safetensors adapter: unexpected tensor {name[:100]!r} (LoRA on "
                             f"{', '.join(sorted(TARGET_MODULES))} converts)")
        info = checkpoint.info(name)
        if info.dtype not in _DTYPES or len(info.shape) != 2 or 0 in info.shape:
            raise _fail(f"tensor {name[:100]!r} must be a 2-D F32, F16 or BF16 matrix")
        block, module, side = match.groups()
        target = f"blk.{int(block)}.{MODULES[module]}.weight"
        other = halves.setdefault(target, {}).setdefault(side, name)
        if other != name:  # "layers.01" and "layers.1": one GGUF tensor, two sources
            raise _fail(f"tensors {other[:100]!r} and {name[:100]!r} both map to {target}.lora_{side.lower()}")
    if not halves:
        raise _fail("it has no lora_A/lora_B tensors")
    pairs = [_pair(checkpoint, target, sides, config_rank) for target, sides in sorted(halves.items())]
    if base is not None:
        _check_base(pairs, checkpoint, base)
    return AdapterPlan(alpha, pairs, checkpoint)


def _pair(checkpoint: Checkpoint, target: str, sides: dict[str, str], config_rank: int | None) -> LoraPair:
    if len(sides) != 2:
        raise _fail(f"the LoRA pair for {target!r} lacks its lora_{'B' if 'A' in sides else 'A'}")
    a, b = checkpoint.info(sides["A"]).shape, checkpoint.info(sides["B"]).shape
    if a[0] != b[1]:
        raise _fail(f"rank mismatch for {target!r}: lora_A {list(a)}, lora_B {list(b)}")
    if config_rank is not None and a[0] != config_rank:
        raise _fail(f"rank mismatch for {target!r}: its tensors have rank {a[0]}, {CONFIG_NAME} says r={config_rank}")
    return LoraPair(target, sides["A"], sides["B"], a[0])


def _heads(base: GGUFInfo) -> tuple[int, int]:
    n_head = base.arch_value("attention.head_count")
    n_kv = base.arch_value("attention.head_count_kv", n_head)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (n_head, n_kv)):
        raise BadRequest("safetensors adapter: the base model's head counts are not plain numbers")
    return n_head, n_kv


def _check_base(pairs: list[LoraPair], checkpoint: Checkpoint, base: GGUFInfo) -> None:
    arch = base.architecture
    if arch not in ARCHITECTURES:
        raise BadRequest(f"safetensors adapter: converting an adapter for a {arch[:40]!r} model is not "
                         f"supported; supported: {', '.join(ARCHITECTURES)}")
    shapes = {t.name: t.shape for t in base.tensors}
    n_head, n_kv = _heads(base)
    for pair in pairs:
        ne = shapes.get(pair.target)
        if ne is None or len(ne) != 2:
            raise BadRequest(f"safetensors adapter: LoRA tensor {pair.target!r} does not exist in base model")
        a, b = checkpoint.info(pair.a).shape, checkpoint.info(pair.b).shape
        if a[1] != ne[0] or b[0] != ne[1]:  # base ne [in, out]
            raise BadRequest(f"safetensors adapter: tensor {pair.target!r} has incorrect shape: base "
                             f"{[ne[1], ne[0]]} (out, in), lora_A {list(a)}, lora_B {list(b)}")
        heads = _permute_heads(arch, pair.target, n_head, n_kv)
        if heads and b[0] % (2 * heads):
            raise BadRequest(f"safetensors adapter: {pair.target!r} rows do not split into {heads} heads")


def _permute_heads(arch: str, target: str, n_head: int, n_kv: int) -> int:
    """The head count B's rows are permuted with (0: not permuted), as the base converter did."""
    if not ARCHITECTURES.get(arch):
        return 0
    return {"attn_q.weight": n_head, "attn_k.weight": n_kv}.get(target.split(".", 2)[2], 0)


def convert_adapter(files: Mapping[str, Path], base: GGUFInfo, out_path: Path) -> int:
    """Write the PEFT adapter in ``files`` as a GGUF LoRA for ``base`` at ``out_path``; returns the
    number of tensors. Written under a temporary name and renamed: nothing half-written remains."""
    plan = plan_adapter(files, base)
    n_head, n_kv = _heads(base)
    with gguf_written(out_path, base.architecture, ".adapter-") as writer:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, plan.alpha)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_head_count(n_head)  # as Ollama's llamaAdapter.KV copies them
        writer.add_head_count_kv(n_kv)
        tensors = [(f"{p.target}.lora_{side}", name, p) for p in plan.pairs for side, name in (("a", p.a), ("b", p.b))]
        for out_name, name, _ in tensors:
            shape = plan.checkpoint.info(name).shape
            writer.add_tensor_info(out_name, shape, np.dtype(np.float16), 2 * shape[0] * shape[1],
                                   raw_dtype=gguf.GGMLQuantizationType.F16)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for out_name, name, pair in tensors:
            array = np.asarray(plan.checkpoint.read(name), dtype=np.float32)
            heads = _permute_heads(base.architecture, pair.target, n_head, n_kv)
            if heads and out_name.endswith(".lora_b"):
                array = permute_qk(array, heads)
            half = np.ascontiguousarray(array, dtype=np.float16)
            if not np.isfinite(half).all():  # NaN, or beyond F16's range
                raise _fail(f"tensor {name[:100]!r} has values F16 cannot hold")
            writer.write_tensor_data(half)
    return len(tensors)
