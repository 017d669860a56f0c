import struct
from pathlib import Path

import pytest

from ggufs import write_tiny_gguf
from skyllama.errors import InvalidModelFile
from skyllama.gguf_info import format_parameter_size, read_gguf


def test_reads_tiny_model(tmp_path: Path) -> None:
    info = read_gguf(write_tiny_gguf(tmp_path / "m.gguf", chat_template="{{ x }}"))
    assert info.architecture == "llama" and info.file_type == "F32"
    assert info.context_length == 256 and info.parameter_count == 16 * 32 + 32
    assert info.chat_template == "{{ x }}" and not info.is_embedding_model
    assert info.model_info()["general.architecture"] == "llama"


def test_embedding_model(tmp_path: Path) -> None:
    assert read_gguf(write_tiny_gguf(tmp_path / "e.gguf", arch="bert", embedding=True)).is_embedding_model


def header(n_tensors: int = 0, n_kv: int = 0, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def kv_string(key: str, value_len: int, value: bytes = b"") -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<IQ", 8, value_len) + value


@pytest.mark.parametrize(
    "data",
    [
        b"", b"GGML" + b"\0" * 30, header(version=9), header(n_tensors=1 << 40), header(n_kv=1 << 40),
        header(n_kv=1) + kv_string("general.name", 1 << 50),
        header(n_kv=1) + struct.pack("<Q", 4) + b"name" + struct.pack("<I", 99),
        header(n_kv=1) + struct.pack("<Q", 4) + b"toks" + struct.pack("<IIQ", 9, 8, 1 << 60),
        header(n_tensors=1) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 9),
        header(n_tensors=1) + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, 32, 999, 0),
        header(n_tensors=1) + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, 1 << 30, 0, 0),
    ],
)
def test_malformed_headers_are_rejected_fast(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data + b"\0" * 64)
    with pytest.raises(InvalidModelFile):
        read_gguf(path)


def test_overlapping_tensors(tmp_path: Path) -> None:
    t = b"".join(struct.pack("<Q", 1) + name + struct.pack("<IQIQ", 1, 8, 0, 0) for name in (b"a", b"b"))
    path = tmp_path / "overlap.gguf"
    path.write_bytes(header(n_tensors=2) + t + b"\0" * 128)
    with pytest.raises(InvalidModelFile, match="overlap"):
        read_gguf(path)


def test_truncated_real_file(tmp_path: Path) -> None:
    good = write_tiny_gguf(tmp_path / "m.gguf").read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(good[: len(good) - 100])
    with pytest.raises(InvalidModelFile):
        read_gguf(path)


def test_parameter_size_labels() -> None:
    assert [format_parameter_size(n) for n in (134_515_008, 8_030_261_248, 22_700, 12)] == \
        ["134.52M", "8.0B", "22.70K", "12"]
