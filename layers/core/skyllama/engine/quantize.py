"""Quantize an F16/F32 GGUF with llama.cpp's own quantizer, as Ollama's ``create --quantize`` does.

Everything that could make the native quantizer fail is checked first in Python, in the server
process: the level name (llama.cpp's file types, as the ``gguf`` package numbers them) and the
source's file type, so a bad request is a 400 and never reaches native code. The native step,
:func:`quantize_native`, runs only in a runner process (``engine/runner``), so a crafted model
that crashes llama.cpp's quantizer takes down that process, not the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf

from skyllama.errors import BadRequest, InvalidModelFile

_PREFIX = "MOSTLY_"

# Left out: F16/BF16 (not quantizations), the IQ1/IQ2/IQ3_XXS types and Q2_K_S (llama.cpp wants an
# importance matrix for them), ternary and MoE-only types, and GUESSED.
_EXCLUDED = {
    "F16",
    "BF16",
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "Q2_K_S",
    "TQ1_0",
    "TQ2_0",
    "MXFP4_MOE",
    "NVFP4",
    "Q1_0",
    "Q2_0",
}

_UNQUANTIZED = {
    gguf.LlamaFileType.ALL_F32: "F32",
    gguf.LlamaFileType.MOSTLY_F16: "F16",
    gguf.LlamaFileType.MOSTLY_BF16: "BF16",
}
_FLOAT_TENSORS = {
    gguf.GGMLQuantizationType.F32,
    gguf.GGMLQuantizationType.F16,
    gguf.GGMLQuantizationType.BF16,
}


def _ftypes() -> dict[str, int]:
    # gguf.LlamaFileType mirrors llama.cpp's LLAMA_FTYPE_MOSTLY_* values (tests/unit/test_quantize.py)
    return {
        name.removeprefix(_PREFIX): int(value)
        for name, value in gguf.LlamaFileType.__members__.items()
        if name.startswith(_PREFIX) and name.removeprefix(_PREFIX) not in _EXCLUDED
    }


def supported_quantizations() -> list[str]:
    """Level names ``quantize`` accepts, in llama.cpp's spelling (``Q4_K_M``); any case works."""
    return sorted(_ftypes())


def _level(level: str) -> tuple[str, int]:
    ftypes = _ftypes()
    key = level.strip().upper() if isinstance(level, str) else ""
    if key not in ftypes:
        raise BadRequest(
            f"unsupported quantization {str(level)[:40]!r}; supported: {', '.join(sorted(ftypes))}"
        )
    return key, ftypes[key]


def already_quantized(file_type: str) -> BadRequest:
    """Ollama's words for quantizing a quantized model (create.go), and which level it has."""
    return BadRequest(f"quantization is only supported for F16, BF16 and F32 models (this one is {file_type})")


def source_file_type(src: Path) -> str:
    """``F32``, ``F16`` or ``BF16`` for an unquantized GGUF; anything else means already quantized."""
    try:
        reader = gguf.GGUFReader(src)
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise InvalidModelFile("the model to quantize is not a readable GGUF file") from e
    field = reader.get_field(gguf.Keys.General.FILE_TYPE)
    ftype = int(field.parts[field.data[0]][0]) if field is not None else None
    tensor_types = {t.tensor_type for t in reader.tensors}
    if not tensor_types <= _FLOAT_TENSORS:
        # Trust the tensors over the header; name the level from the header when it has one.
        if ftype is not None and ftype not in _UNQUANTIZED:
            try:
                return gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_")
            except ValueError:
                pass  # a file type newer than this gguf package: fall back to a tensor type
        return min(t.name for t in tensor_types - _FLOAT_TENSORS)
    if ftype in _UNQUANTIZED:
        return _UNQUANTIZED[gguf.LlamaFileType(ftype)]
    return "F16" if gguf.GGMLQuantizationType.F16 in tensor_types else "F32"


NativeQuantize = Callable[[Path, Path, int], None]  # (source, destination, llama.cpp file type)


def quantize_gguf(src: Path, dst: Path, level: str, native: NativeQuantize,
                  progress: Callable[[str], None] | None = None) -> None:
    """Quantize the F16/F32/BF16 GGUF ``src`` to ``level`` (e.g. ``q4_K_M``), writing ``dst`` atomically.

    ``native`` runs llama.cpp's quantizer (in a runner process). Raises ``BadRequest`` for an
    unknown level or an already-quantized source.
    """
    name, ftype = _level(level)
    source = source_file_type(src)
    if source not in _UNQUANTIZED.values():
        raise already_quantized(source)
    if progress is not None:
        progress(f"quantizing {source} model to {name}")
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=".quantize-", suffix=".gguf.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        native(src, tmp, ftype)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_native(src: str | Path, dst: str | Path, ftype: int) -> None:
    """llama.cpp's quantizer itself (runner processes only: this imports ``llama_cpp``).

    llama.cpp logs the model loader's metadata dump and a line per tensor (hundreds for a real
    model) while it quantizes; llama-cpp-python prints them all to the process's output, which a
    runner shares with the server (on stderr; on Lambda, one CloudWatch event per line). They are
    kept instead, and only a failure's error lines are shown, in its error (paths left out)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    with _native_log_kept(llama_cpp) as lines:
        rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(dst), ctypes.byref(params))
    if rc != 0:
        errors = [text for level, text in lines if level == _GGML_LOG_ERROR] or [text for _, text in lines[-2:]]
        said = " ".join(" ".join(errors).replace(str(src), "<model>").replace(str(dst), "<output>").split())[-300:]
        raise InvalidModelFile("llama.cpp could not quantize the model" + (f" ({said})" if said else ""))


_GGML_LOG_ERROR = 4  # ggml.h enum ggml_log_level (llama-cpp-python's _logger.py still has the old numbering)


@contextlib.contextmanager
def _native_log_kept(llama_cpp: Any) -> Iterator[list[tuple[int, str]]]:
    """While inside, llama.cpp's log (llama and ggml) goes to the yielded list as ``(level,
    text)``, not to stderr; llama-cpp-python's own callback is put back after (the process may
    load a model later)."""
    lines: list[tuple[int, str]] = []

    @llama_cpp.llama_log_callback
    def keep(level: int, text: bytes, user_data: Any) -> None:
        lines.append((level, text.decode("utf-8", "replace")))

    llama_cpp.llama_log_set(keep, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        from llama_cpp import _logger  # llama-cpp-python's callback, set when it was imported

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
