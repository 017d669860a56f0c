"""The safetensors validator rejects every crafted bad file fast, naming the client's file name."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from skyllama.convert.safetensors_reader import MAX_HEADER_BYTES, SafetensorsFile, open_checkpoint
from skyllama.errors import BadRequest, InvalidModelFile


def craft(path: Path, header: object, data: bytes = b"", header_len: int | None = None) -> Path:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    n = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def good_header() -> dict[str, object]:
    return {"a": entry("F32", [2, 2], 0, 16), "b": entry("F16", [4], 16, 24)}


def test_valid_file_reads_lazily(tmp_path: Path) -> None:
    a = np.arange(4, dtype="<f4").reshape(2, 2)
    b = np.array([1, 2, 3, 4], dtype="<f2")
    path = craft(
        tmp_path / "blob", {**good_header(), "__metadata__": {"format": "pt"}}, a.tobytes() + b.tobytes()
    )
    sf = SafetensorsFile(path, "model.safetensors")
    assert set(sf.tensors) == {"a", "b"}
    np.testing.assert_array_equal(sf.read("a"), a)
    np.testing.assert_array_equal(sf.read("b"), b)
    assert isinstance(sf.read("a"), np.memmap)


def test_bf16_is_widened_to_float32(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    path = craft(tmp_path / "blob", {"x": entry("BF16", [3], 0, 6)}, bf16.tobytes())
    np.testing.assert_array_equal(SafetensorsFile(path, "m.safetensors").read("x"), values)


def test_matches_the_safetensors_package(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {
        "w": np.random.default_rng(0).standard_normal((3, 5)).astype(np.float16),
        "z": np.zeros(0, np.float32),
    }
    path = tmp_path / "ref.safetensors"
    safetensors_numpy.save_file(tensors, str(path))
    ckpt = open_checkpoint({"model.safetensors": path})
    np.testing.assert_array_equal(ckpt.read("w"), tensors["w"])
    assert ckpt.read("z").shape == (0,)


BAD_FILES = {
    "truncated header": (b"\x10\x00\x00", None, "shorter than the 8-byte"),
    "header length past EOF": ({"a": entry("F32", [1], 0, 4)}, 10_000, "past the end of the file"),
    "huge header length": ({}, 2**63, "exceeds"),
    "zero header length": ({}, 0, "header length is zero"),
    "bad JSON": (b"{not json", None, "not valid UTF-8 JSON"),
    "header not an object": ([1, 2, 3], None, "not a JSON object"),
    "unknown dtype": ({"a": entry("F8_E4M3", [4], 0, 4)}, None, "unsupported dtype"),
    "negative dim": ({"a": entry("F32", [-1], 0, 4)}, None, "non-negative integers"),
    "byte length vs shape": ({"a": entry("F32", [3, 3], 0, 16)}, None, "does not match shape"),
    "offsets reversed": ({"a": entry("F32", [0], 8, 4)}, None, "is after end"),
    "overlapping offsets": ({"a": entry("F32", [4], 0, 16), "b": entry("F32", [2], 8, 16)}, None, "overlap"),
    "offsets past EOF": ({"a": entry("F32", [8], 0, 32)}, None, "past the 16-byte data section"),
    "bad metadata": ({"__metadata__": {"k": 1}}, None, "__metadata__"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_files_are_invalid_model_file(tmp_path: Path, case: str) -> None:
    header, header_len, message = BAD_FILES[case]
    path = tmp_path / "blob-sha256-server-side"
    if case == "truncated header":
        assert isinstance(header, bytes)
        path.write_bytes(header)
    else:
        craft(path, header, b"\0" * 16, header_len)
    started = time.monotonic()
    with pytest.raises(InvalidModelFile) as info:
        SafetensorsFile(path, "model-00001-of-00002.safetensors")
    assert time.monotonic() - started < 1.0
    assert info.value.status == 400
    assert message in str(info.value)
    assert "model-00001-of-00002.safetensors" in str(info.value)
    assert str(tmp_path) not in str(info.value)  # never a server path


def test_huge_header_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = craft(tmp_path / "blob", {}, b"", header_len=MAX_HEADER_BYTES + 1)
    with pytest.raises(InvalidModelFile, match="exceeds"):
        SafetensorsFile(path, "model.safetensors")


def write_shard(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    header: dict[str, object] = {}
    data = b""
    for name, array in tensors.items():
        header[name] = entry("F32", list(array.shape), len(data), len(data) + array.nbytes)
        data += array.astype("<f4").tobytes()
    return craft(path, header, data)


def test_sharded_checkpoint_with_index(tmp_path: Path) -> None:
    one = write_shard(tmp_path / "b1", {"x": np.ones(2, np.float32)})
    two = write_shard(tmp_path / "b2", {"y": np.full(3, 2, np.float32)})
    index = tmp_path / "b3"
    index.write_text(
        json.dumps(
            {"weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}
        )
    )
    files = {
        "model-00001-of-00002.safetensors": one,
        "model-00002-of-00002.safetensors": two,
        "model.safetensors.index.json": index,
    }
    ckpt = open_checkpoint(files)
    assert ckpt.names() == ["x", "y"]
    np.testing.assert_array_equal(ckpt.read("y"), np.full(3, 2, np.float32))

    del files["model-00002-of-00002.safetensors"]
    with pytest.raises(InvalidModelFile, match="was not uploaded"):
        open_checkpoint(files)


def test_index_naming_a_tensor_the_shard_lacks(tmp_path: Path) -> None:
    one = write_shard(tmp_path / "b1", {"x": np.ones(2, np.float32)})
    index = tmp_path / "idx"
    index.write_text(json.dumps({"weight_map": {"nope": "model.safetensors"}}))
    with pytest.raises(InvalidModelFile, match="lacks it"):
        open_checkpoint({"model.safetensors": one, "model.safetensors.index.json": index})


def test_bad_index_and_duplicates_and_no_weights(tmp_path: Path) -> None:
    one = write_shard(tmp_path / "b1", {"x": np.ones(2, np.float32)})
    two = write_shard(tmp_path / "b2", {"x": np.ones(2, np.float32)})
    index = tmp_path / "idx"
    index.write_text("[")
    with pytest.raises(InvalidModelFile, match="index.json is not valid"):
        open_checkpoint({"model.safetensors": one, "model.safetensors.index.json": index})
    with pytest.raises(InvalidModelFile, match="appears in both"):
        open_checkpoint({"a.safetensors": one, "b.safetensors": two})
    with pytest.raises(InvalidModelFile, match="no .safetensors"):
        open_checkpoint({"config.json": one})
    assert issubclass(InvalidModelFile, BadRequest)
