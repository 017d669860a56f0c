"""quantize_gguf: level names, llama.cpp's quantizer on a converted model, and its 400s."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import gguf
import numpy as np
import pytest

from skyllama.errors import BadRequest, InvalidModelFile

llama_cpp = pytest.importorskip("llama_cpp")

from skyllama.engine.quantize import (  # noqa: E402
    quantize_gguf,
    quantize_native,
    source_file_type,
    supported_quantizations,
)


def _tiny_llama_builder() -> ModuleType:
    # Load the sibling test module by path, so this works whatever pytest's import mode is.
    spec = importlib.util.spec_from_file_location(
        "_tiny_llama", Path(__file__).with_name("test_convert_llama.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def f16_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny converted Llama; its 64-column matrices make K-quants fall back per tensor."""
    from skyllama.convert import convert_model_dir

    folder = tmp_path_factory.mktemp("q")
    files, _ = _tiny_llama_builder().write_model(folder / "upload")
    out = folder / "tiny-f16.gguf"
    convert_model_dir(files, out)
    return out


def test_supported_levels_include_ollamas() -> None:
    levels = supported_quantizations()
    for level in ("Q4_K_M", "Q4_K_S", "Q8_0", "Q4_0", "Q5_K_M", "Q6_K"):
        assert level in levels
    assert "F16" not in levels and "IQ2_XXS" not in levels  # not quantizations / needs an imatrix


@pytest.mark.parametrize("level", ["q8_0", "Q4_K_M", "q4_k_s", "q4_0"])
def test_quantize_levels(f16_model: Path, tmp_path: Path, level: str) -> None:
    dst = tmp_path / "q.gguf"
    lines: list[str] = []
    quantize_gguf(f16_model, dst, level, quantize_native, lines.append)
    assert lines == [f"quantizing F16 model to {level.upper()}"]
    assert source_file_type(dst) == level.upper()
    assert dst.stat().st_size < f16_model.stat().st_size
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".quantize-")] == []
    llm = llama_cpp.Llama(model_path=str(dst), n_ctx=32, verbose=False)
    assert llm.create_completion("hello", max_tokens=2, temperature=0.0)["usage"]["completion_tokens"] >= 1


def test_already_quantized_source_is_400(f16_model: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    quantize_gguf(f16_model, q8, "q8_0", quantize_native)
    with pytest.raises(BadRequest, match=r"^quantization is only supported for F16, BF16 and F32 models \(this one is Q8_0\)$") as info:
        quantize_gguf(q8, tmp_path / "again.gguf", "q4_K_M", quantize_native)
    assert info.value.status == 400
    assert not (tmp_path / "again.gguf").exists()


@pytest.mark.parametrize("level", ["q4_k_x", "f16", "", "../q4_0", "IQ2_XXS"])
def test_unknown_level_is_400(f16_model: Path, tmp_path: Path, level: str) -> None:
    with pytest.raises(BadRequest, match="unsupported quantization"):
        quantize_gguf(f16_model, tmp_path / "x.gguf", level, quantize_native)
    assert not (tmp_path / "x.gguf").exists()


def test_not_a_gguf_is_400_before_native_code(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(InvalidModelFile, match="not a readable GGUF"):
        quantize_gguf(bogus, tmp_path / "x.gguf", "q8_0", quantize_native)


def test_f32_source_is_accepted(tmp_path: Path) -> None:
    src = tmp_path / "f32.gguf"
    writer = gguf.GGUFWriter(src, "llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tensor("x.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert source_file_type(src) == "F32"


def test_level_numbers_are_llama_cpps() -> None:
    """The levels come from the gguf package's numbering, which must be llama.cpp's own."""
    from skyllama.engine.quantize import _ftypes

    for name, value in _ftypes().items():
        assert getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}") == value, name


def test_quantize_runs_in_a_runner_process(f16_model: Path, tmp_path: Path) -> None:
    """The server's path: llama.cpp's quantizer in a child process of its own."""
    from skyllama.engine.runner.pool import RunnerPool

    pool = RunnerPool(spares=0)
    try:
        quantize_gguf(f16_model, tmp_path / "q.gguf", "q8_0", pool.quantize)
    finally:
        pool.close()
    assert source_file_type(tmp_path / "q.gguf") == "Q8_0"
    assert pool.started == 1
