"""llama.cpp's quantize log (the loader's metadata dump, a line per tensor) is kept off the
process's output, in the runner the server uses and in-process; a failure says llama.cpp's reason."""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyllama.errors import InvalidModelFile

llama_cpp = pytest.importorskip("llama_cpp")

from skyllama.engine.quantize import quantize_gguf, quantize_native, source_file_type  # noqa: E402
from skyllama.engine.runner.pool import RunnerPool  # noqa: E402

PER_TENSOR = re.compile(r"^\[\s*\d+/\s*\d+\]\s+\S+\s+- ", re.M)  # "[   1/  21] output.weight   - [ 64, ..."
Q4_K_M = 15


@pytest.fixture(scope="module")
def f16_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny converted Llama (21 tensors), as tests/unit/test_quantize.py makes it."""
    from skyllama.convert import convert_model_dir

    spec = importlib.util.spec_from_file_location("_tiny_llama_log", Path(__file__).with_name("test_convert_llama.py"))
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    folder = tmp_path_factory.mktemp("qlog")
    files, _ = builder.write_model(folder / "upload")
    out = folder / "tiny-f16.gguf"
    convert_model_dir(files, out)
    return out


@pytest.fixture(autouse=True)
def fresh_process_log_level() -> Iterator[None]:
    """llama-cpp-python's logger as in a fresh process (a quantize runner): every line printed.
    A ``Llama(verbose=False)`` earlier in this process would have raised it to ERROR."""
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


def _raw_quantize(src: Path, dst: Path) -> int:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = Q4_K_M
    return int(llama_cpp.llama_model_quantize(bytes(src), bytes(dst), ctypes.byref(params)))


def test_the_raw_quantizer_does_print_a_line_per_tensor(f16_model: Path, tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """What the fix is for: llama.cpp, through llama-cpp-python's callback, prints every tensor."""
    assert _raw_quantize(f16_model, tmp_path / "raw.gguf") == 0
    out, err = capfd.readouterr()
    assert len(PER_TENSOR.findall(out + err)) == 21 and "llama_model_loader" in out + err


def test_a_runner_quantizes_without_a_word_on_the_servers_output(f16_model: Path, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    pool = RunnerPool(spares=0)  # the runner shares this process's stdout and stderr (fds 1 and 2)
    try:
        quantize_gguf(f16_model, tmp_path / "q.gguf", "q4_K_M", pool.quantize)
    finally:
        pool.close()
    assert source_file_type(tmp_path / "q.gguf") == "Q4_K_M"
    out, err = capfd.readouterr()
    assert not PER_TENSOR.findall(out + err), (out + err)[:2000]
    assert "llama_model_loader" not in out + err and "quantize" not in out + err


def test_in_process_it_is_quiet_and_llama_cpp_pythons_log_comes_back(f16_model: Path, tmp_path: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    quantize_native(f16_model, tmp_path / "q.gguf", Q4_K_M)
    out, err = capfd.readouterr()
    assert not PER_TENSOR.findall(out + err) and "llama_model_loader" not in out + err
    assert _raw_quantize(f16_model, tmp_path / "after.gguf") == 0  # a later llama.cpp call logs as before
    assert len(PER_TENSOR.findall("".join(capfd.readouterr()))) == 21


def test_a_failure_says_llama_cpps_reason(f16_model: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidModelFile, match=r"^llama\.cpp could not quantize the model "
                                                r"\(llama_model_quantize: failed to quantize: .+\)$"):
        quantize_native(f16_model, tmp_path / "no-such-folder" / "q.gguf", Q4_K_M)
    assert not PER_TENSOR.findall("".join(capfd.readouterr()))
