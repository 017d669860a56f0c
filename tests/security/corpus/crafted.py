"""A corpus of crafted GGUF files and safetensors headers (T-09): each is built from bytes here so
the corpus is reviewable and no binary is committed. Every entry must be refused with
``InvalidModelFile`` by the pure-Python readers, quickly and without large allocations."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

U32, U64 = "<I", "<Q"
T_UINT32, T_STRING, T_ARRAY = 4, 8, 9
F32 = 0


def s(text: str | bytes, length: int | None = None) -> bytes:
    """A GGUF string: u64 length (``length`` overrides it, to lie) then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(U64, len(raw) if length is None else length) + raw


def header(n_tensors: int, n_kv: int, version: int = 3, magic: bytes = b"GGUF") -> bytes:
    return magic + struct.pack(U32, version) + struct.pack(U64, n_tensors) + struct.pack(U64, n_kv)


def kv(key: str, vtype: int, value: bytes) -> bytes:
    return s(key) + struct.pack(U32, vtype) + value


def tensor(name: str, dims: tuple[int, ...], ggml_type: int = F32, offset: int = 0) -> bytes:
    out = s(name) + struct.pack(U32, len(dims))
    for d in dims:
        out += struct.pack(U64, d)
    return out + struct.pack(U32, ggml_type) + struct.pack(U64, offset)


def pad(data: bytes, align: int = 32) -> bytes:
    return data + b"\0" * (-len(data) % align)


ARCH = kv("general.architecture", T_STRING, s("llama"))


def valid(tensors: list[tuple[str, tuple[int, ...], int, int]], data_bytes: int, extra_kv: bytes = b"",
          n_kv: int = 1) -> bytes:
    body = header(len(tensors), n_kv) + ARCH + extra_kv
    for name, dims, t, off in tensors:
        body += tensor(name, dims, t, off)
    return pad(body) + b"\0" * data_bytes


def vocab(*strings: bytes) -> bytes:
    """A file whose one key is a string array (a tokenizer's tokens) of these strings."""
    items = struct.pack(U32, T_STRING) + struct.pack(U64, len(strings)) + b"".join(strings)
    return header(0, 1) + kv("tokenizer.ggml.tokens", T_ARRAY, items)


GGUF_CASES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "too-short": lambda: b"GGU",
    "bad-magic": lambda: header(0, 0, magic=b"GGML") + b"\0" * 64,
    "zip-magic": lambda: b"PK\x03\x04" + b"\0" * 64,
    "version-99": lambda: header(0, 0, version=99),
    "version-0": lambda: header(0, 0, version=0),
    "huge-tensor-count": lambda: header(2**63, 0),
    "huge-kv-count": lambda: header(0, 2**64 - 1),
    "kv-count-past-end": lambda: header(0, 1000) + ARCH,
    "key-length-past-end": lambda: header(0, 1) + s("general.architecture", length=2**40),
    "value-string-past-end": lambda: header(0, 1) + kv("general.name", T_STRING, s("x", length=2**62)),
    "unknown-value-type": lambda: header(0, 1) + kv("general.name", 99, b"\0" * 8),
    "array-count-huge": lambda: header(0, 1) + kv("tokenizer.ggml.tokens", T_ARRAY,
                                                  struct.pack(U32, T_STRING) + struct.pack(U64, 2**60)),
    # A vocabulary (past MAX_ARRAY_KEEP strings, walked without keeping): one length lies, or the last runs off.
    "vocab-string-length-lies": lambda: vocab(*[s("a")] * 50, s("b", length=2**62), *[s("c")] * 49),
    "vocab-last-string-past-end": lambda: vocab(*[s("a")] * 99, s("b", length=5)),
    "array-of-arrays-deep": lambda: header(0, 1) + s("x") + (struct.pack(U32, T_ARRAY) + struct.pack(U32, T_ARRAY)
                                                              + struct.pack(U64, 1)) * 200,
    "array-unknown-type": lambda: header(0, 1) + kv("x", T_ARRAY, struct.pack(U32, 77) + struct.pack(U64, 1)),
    "tensor-name-past-end": lambda: header(1, 1) + ARCH + s("w", length=2**50),
    "tensor-too-many-dims": lambda: valid([("w", (1,) * 100, F32, 0)], 64),
    "tensor-unknown-type": lambda: valid([("w", (4,), 999, 0)], 64),
    "tensor-zero-dim": lambda: valid([("w", (0, 4), F32, 0)], 64),
    "tensor-dims-overflow": lambda: valid([("w", (2**32, 2**32, 2**32), F32, 0)], 64),
    "tensor-offset-past-end": lambda: valid([("w", (4,), F32, 2**40)], 64),
    "tensor-unaligned-offset": lambda: valid([("w", (4,), F32, 3)], 64),
    "tensors-overlap": lambda: valid([("a", (8,), F32, 0), ("b", (8,), F32, 0)], 64),
    "tensors-overlap-partly": lambda: valid([("a", (8,), F32, 0), ("b", (8,), F32, 16)], 64),
    "duplicate-tensor-names": lambda: valid([("a", (4,), F32, 0), ("a", (4,), F32, 32)], 64),
    "truncated-data": lambda: valid([("w", (1024,), F32, 0)], 100),
    "truncated-header": lambda: valid([("w", (4,), F32, 0)], 16)[:40],
    "alignment-zero": lambda: valid([("w", (4,), F32, 0)], 64, kv("general.alignment", T_UINT32,
                                                                     struct.pack(U32, 0)), n_kv=2),
    "alignment-not-power-of-two": lambda: valid([("w", (4,), F32, 0)], 64, kv("general.alignment", T_UINT32,
                                                                                 struct.pack(U32, 24)), n_kv=2),
}


def st(header_obj: object, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header_obj if isinstance(header_obj, bytes) else json.dumps(header_obj).encode()
    return struct.pack(U64, len(raw) if length is None else length) + raw + data


def _t(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


SAFETENSORS_CASES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "short-length": lambda: b"\x01\x02",
    "zero-header": lambda: st(b"", length=0),
    "header-length-huge": lambda: st({"w": _t("F32", [1], 0, 4)}, length=2**63),
    "header-length-past-end": lambda: st({"w": _t("F32", [1], 0, 4)}, length=10_000),
    "header-not-json": lambda: st(b"{not json"),
    "header-not-object": lambda: st([1, 2, 3]),
    "header-not-utf8": lambda: st(b'{"\xff\xfe": 1}'),
    "entry-not-object": lambda: st({"w": 5}),
    "unknown-dtype": lambda: st({"w": _t("F128", [1], 0, 16)}, b"\0" * 16),
    "offsets-past-end": lambda: st({"w": _t("F32", [4], 0, 16)}, b"\0" * 8),
    "offsets-reversed": lambda: st({"w": _t("F32", [1], 8, 4)}, b"\0" * 8),
    "offsets-negative": lambda: st({"w": _t("F32", [1], -4, 0)}, b"\0" * 8),
    "offsets-not-ints": lambda: st({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, b"\0" * 4),
    "shape-mismatch": lambda: st({"w": _t("F32", [3], 0, 8)}, b"\0" * 8),
    "shape-negative": lambda: st({"w": _t("F32", [-1], 0, 4)}, b"\0" * 4),
    "shape-overflow": lambda: st({"w": _t("F32", [2**62, 2**62], 0, 4)}, b"\0" * 4),
    "too-many-dims": lambda: st({"w": _t("F32", [1] * 64, 0, 4)}, b"\0" * 4),
    "overlap": lambda: st({"a": _t("F32", [2], 0, 8), "b": _t("F32", [2], 4, 12)}, b"\0" * 12),
    "metadata-not-strings": lambda: st({"__metadata__": {"a": {"b": 1}}, "w": _t("F32", [1], 0, 4)}, b"\0" * 4),
}
