"""Convert an uploaded Hugging Face safetensors model folder to an F16 GGUF, as Ollama's create does.

``convert_model_dir`` takes the client's file names (``config.json``, ``model.safetensors``,
``tokenizer.json``, ...) mapped to the local blobs, checks the names and every safetensors header,
then writes the GGUF with the ``gguf`` package: metadata and tensor infos first, then the tensors
one at a time straight from their memory-mapped shards, so peak memory is about one tensor.
The file is written next to ``out_path`` under a temporary name and renamed into place at the end;
nothing half-written is left behind on failure.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import gguf
import numpy as np

from skyllama.convert import bert, llama
from skyllama.convert.gguf_file import gguf_written
from skyllama.convert.hf_model import HFModel, PlannedTensor
from skyllama.convert.safetensors_reader import open_checkpoint
from skyllama.errors import BadRequest, InvalidModelFile
from skyllama.filenames import validate_file_name

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ConvertResult:
    """What was written: GGUF architecture (``bert``, ``llama``, ``qwen2``), size and kind."""

    architecture: str
    parameter_count: int
    file_type: str
    is_embedding: bool


def supported_architectures() -> list[str]:
    """The Hugging Face ``architectures`` values this converter accepts."""
    return sorted([*bert.HF_ARCHITECTURES, *llama.HF_ARCHITECTURES])


def _module_for(hf_architecture: str) -> ModuleType:
    if hf_architecture in bert.HF_ARCHITECTURES:
        return bert
    if hf_architecture in llama.HF_ARCHITECTURES:
        return llama
    raise BadRequest(
        f"unsupported architecture {hf_architecture[:100]!r}; supported: {', '.join(supported_architectures())}"
    )


def convert_model_dir(
    files: Mapping[str, Path], out_path: Path, progress: Progress | None = None
) -> ConvertResult:
    """Convert the safetensors model in ``files`` (client name -> local path) to a GGUF at ``out_path``.

    Raises ``BadRequest`` (400) for bad names, a missing config.json or an unsupported
    architecture, and ``InvalidModelFile`` (400) for malformed weights or side files.
    """
    say = progress or (lambda _line: None)
    for name in files:
        validate_file_name(name)
    if "config.json" not in files:
        raise BadRequest("config.json is missing: a safetensors model needs its config.json")

    with tempfile.TemporaryDirectory(prefix="skyllama-convert-") as stage:
        model = HFModel(files, Path(stage))
        module = _module_for(model.architecture)
        arch = llama.arch_for(model.architecture) if module is llama else bert.ARCH
        arch_name = gguf.MODEL_ARCH_NAMES[arch]
        checkpoint = open_checkpoint(files)
        say(f"converting {model.architecture} model to GGUF ({arch_name}, F16)")
        plan = list(module.plan_tensors(checkpoint, model))
        _check_complete(plan, module.REQUIRED, model.int_param("num_hidden_layers"))
        _write(out_path, arch_name, lambda w: module.add_metadata(w, model), plan, say)

    n_params = sum(int(np.prod(t.shape, dtype=np.int64)) for t in plan)
    say(f"wrote {len(plan)} tensors, {n_params} parameters")
    return ConvertResult(arch_name, n_params, "F16", is_embedding=module is bert)


def check_model_dir(files: Mapping[str, Path]) -> str:
    """Every check :func:`convert_model_dir` makes before writing, without reading the weights.

    Names, config.json, the architecture, each safetensors header, tensor names, shapes and
    completeness, and the tokenizer and metadata: ``/api/create`` runs this first, so a bad upload
    is a 400 before any progress line is sent. Returns the GGUF architecture name.
    """
    for name in files:
        validate_file_name(name)
    if "config.json" not in files:
        raise BadRequest("config.json is missing: a safetensors model needs its config.json")
    with tempfile.TemporaryDirectory(prefix="skyllama-check-") as stage:
        model = HFModel(files, Path(stage))
        module = _module_for(model.architecture)
        arch = llama.arch_for(model.architecture) if module is llama else bert.ARCH
        arch_name = gguf.MODEL_ARCH_NAMES[arch]
        plan = list(module.plan_tensors(open_checkpoint(files), model))
        _check_complete(plan, module.REQUIRED, model.int_param("num_hidden_layers"))
        module.add_metadata(gguf.GGUFWriter(None, arch_name), model)
    return arch_name


def _check_complete(
    plan: list[PlannedTensor],
    required: tuple[tuple[gguf.MODEL_TENSOR, ...], tuple[gguf.MODEL_TENSOR, ...]],
    n_blocks: int,
) -> None:
    """Refuse a checkpoint that lacks a tensor the architecture needs, naming the first one missing."""
    have = {t.name for t in plan}
    model_wide, per_block = required
    names = [gguf.TENSOR_NAMES[k] for k in model_wide]
    names += [gguf.TENSOR_NAMES[k].format(bid=b) for b in range(n_blocks) for k in per_block]
    for name in names:
        if name + ".weight" not in have:
            raise InvalidModelFile(f"the checkpoint lacks {name}.weight, which the model needs")


def _write(
    out_path: Path,
    arch_name: str,
    add_metadata: Callable[[gguf.GGUFWriter], None],
    plan: list[PlannedTensor],
    say: Progress,
) -> None:
    with gguf_written(out_path, arch_name, ".convert-") as writer:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_metadata(writer)
        for t in plan:
            writer.add_tensor_info(t.name, t.shape, np.dtype(t.numpy_dtype), t.nbytes, raw_dtype=t.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, array in enumerate(_load_all(plan)):
            writer.write_tensor_data(array)
            if (i + 1) % max(1, len(plan) // 10) == 0:
                say(f"writing tensors {i + 1}/{len(plan)}")


def _load_all(plan: list[PlannedTensor]) -> Iterator[np.ndarray]:
    for t in plan:
        array = np.ascontiguousarray(t.load(), dtype=t.numpy_dtype)
        if array.shape != t.shape:
            raise InvalidModelFile(f"tensor {t.name!r} changed shape while converting")
        yield array
