"""A bounded, pure-Python reader of GGUF headers: validation and metadata in one pass.

Every GGUF file passes through :func:`read_gguf` before llama.cpp sees it, because a malformed
header (huge counts, strings past the end, overlapping tensors, unknown types) can crash or
exhaust native code. Format knowledge (value types, quantisation block sizes, file-type names)
comes from the ``gguf`` package; the walk itself is ours because ``gguf.GGUFReader`` turns every
array element into a numpy view (seconds for a 100 MB model) and trusts the counts it reads.
Large arrays (the vocabulary) are skipped by arithmetic and reported by length only.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from .errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 17
MAX_KEY_LEN = 1 << 16
MAX_STRING_LEN = 64 << 20
MAX_DIMS = 4
MAX_ARRAY_KEEP = 64  # arrays longer than this are reported by length, not read
MAX_NESTING = 2

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_name: str
    offset: int
    nbytes: int

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFInfo:
    """What a GGUF header says: its key/values (big arrays as lengths) and its tensors."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def parameter_count(self) -> int:
        count = self.metadata.get("general.parameter_count")
        if isinstance(count, int) and count > 0:
            return count
        return sum(t.elements for t in self.tensors)

    @property
    def file_type(self) -> str:
        """Ollama's quantisation label (``Q4_K_M``, ``F16``...) from ``general.file_type``."""
        ft = self.metadata.get("general.file_type")
        if isinstance(ft, int):
            try:
                return LlamaFileType(ft).name.removeprefix("MOSTLY_").removeprefix("ALL_")
            except ValueError:
                pass
        types = {t.type_name for t in self.tensors if len(t.shape) >= 2}
        return types.pop() if len(types) == 1 else "unknown"

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def embedding_length(self) -> int | None:
        value = self.arch_value("embedding_length")
        return int(value) if isinstance(value, int) else None

    @property
    def vocab_size(self) -> int | None:
        """Token ids run 0 .. vocab_size-1: the length of ``tokenizer.ggml.tokens`` (skipped by
        arithmetic when read, so known without loading the model); None when the file has none."""
        length = self.array_lengths.get("tokenizer.ggml.tokens")
        if length is not None:
            return length
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        return len(tokens) if isinstance(tokens, list) else None

    @property
    def is_embedding_model(self) -> bool:
        """Encoder models (BERT family) or models that declare a pooling type are embedders."""
        return self.architecture in {"bert", "nomic-bert", "jina-bert-v2", "t5encoder", "modern-bert"} or (
            self.arch_value("pooling_type") is not None and self.metadata.get("tokenizer.chat_template") is None
        )

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    def model_info(self, verbose: bool = False) -> dict[str, Any]:
        """``/api/show``'s ``model_info`` (and ``projector_info``) as Ollama's getModelData decodes
        it: without ``verbose`` with ``maxArraySize`` 0, so every array that is not empty is
        ``null``; with it, every array in full (read this info with ``read_gguf(all_arrays=True)``).
        Show then drops :data:`SHOW_DELETED_KEYS` from the model's (not the projector's)."""
        info: dict[str, Any] = {}
        for key, value in self.metadata.items():
            info[key] = None if isinstance(value, list) and value and not verbose else value
        for key in self.array_lengths:
            info[key] = None
        info["general.parameter_count"] = self.parameter_count
        return dict(sorted(info.items()))


# the keys Ollama's GetModelInfo deletes from the model's info before answering
SHOW_DELETED_KEYS = ("general.name", "tokenizer.chat_template")
_U64 = struct.Struct("<Q")


class _Cursor:
    """Reads little-endian values from a memory map, checking every length against the file."""

    def __init__(self, buf: mmap.mmap | bytes, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise InvalidModelFile(f"invalid GGUF file: {what} runs past the end of the file")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def string(self, limit: int, what: str) -> str:
        n = self.unpack("<Q", what)
        if n > limit:
            raise InvalidModelFile(f"invalid GGUF file: {what} is too long ({n} bytes)")
        return self.read(n, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings in one tight loop: a vocabulary is ~100k of them,
        read before a model's first load (a call per string took ~45 ms of it for SmolLM2)."""
        buf, pos, size, length = self.buf, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:  # also catches a length that jumped past the end
                raise InvalidModelFile(f"invalid GGUF file: {what} runs past the end of the file")
            pos += 8 + length(buf, pos)[0]
        if pos > size:
            raise InvalidModelFile(f"invalid GGUF file: {what} runs past the end of the file")
        self.pos = pos

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n


def _value_type(raw: int, what: str) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise InvalidModelFile(f"invalid GGUF file: unknown value type {raw} in {what}") from None


_F32 = struct.Struct("<f")


def float32_value(value: float) -> float:
    """A float32 as Go's JSON writes it: its shortest decimal that reads back to the same float32
    (``1e-05``, where the float64 of its bits is 9.999999747378752e-06)."""
    if value != value or value in (float("inf"), float("-inf")):
        return value
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if _F32.unpack(_F32.pack(short))[0] == value:
            return short
    return value


def _read_value(cur: _Cursor, vtype: GGUFValueType, key: str, depth: int = 0,
                keep_up_to: int = MAX_ARRAY_KEEP) -> tuple[Any, int | None]:
    """Read one value; arrays longer than ``keep_up_to`` are skipped and return (None, length)."""
    if vtype == GGUFValueType.FLOAT32:
        return float32_value(cur.unpack("<f", key)), None
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype], key), None
    if vtype == GGUFValueType.STRING:
        return cur.string(MAX_STRING_LEN, key), None
    if vtype != GGUFValueType.ARRAY or depth >= MAX_NESTING:
        raise InvalidModelFile(f"invalid GGUF file: bad value in {key}")
    item_type = _value_type(cur.unpack("<I", key), key)
    count = cur.unpack("<Q", key)
    if item_type in _SCALARS:
        width = struct.calcsize(_SCALARS[item_type])
        if count * width > cur.size:
            raise InvalidModelFile(f"invalid GGUF file: array {key} runs past the end of the file")
        if count > keep_up_to:
            cur.skip(count * width, key)
            return None, count
        items = [cur.unpack(_SCALARS[item_type], key) for _ in range(count)]
        return [float32_value(v) for v in items] if item_type == GGUFValueType.FLOAT32 else items, None
    if count * 8 > cur.size:  # every string or nested array needs at least 8 bytes
        raise InvalidModelFile(f"invalid GGUF file: array {key} runs past the end of the file")
    keep = count <= keep_up_to
    if not keep and item_type == GGUFValueType.STRING:
        cur.skip_strings(count, key)  # the vocabulary: walk the lengths, keep nothing
        return None, count
    items = []
    for _ in range(count):
        value, _n = _read_value(cur, item_type, key, depth + 1, keep_up_to)
        if keep:
            items.append(value)
    return (items, None) if keep else (None, count)


def read_gguf(path: Path | str, *, all_arrays: bool = False) -> GGUFInfo:
    """Validate a GGUF file's header and tensor table and return what it says.

    Raises :class:`InvalidModelFile` (a 400) for anything malformed, within bounded time and
    memory whatever the counts in the header claim. ``all_arrays`` keeps every array, the
    vocabulary too (``/api/show`` with ``verbose``); its memory is bounded by the file's size,
    since every count was checked against it.
    """
    keep_up_to = MAX_TENSORS * MAX_KV if all_arrays else MAX_ARRAY_KEEP
    size = os.path.getsize(path)
    if size < 24:
        raise InvalidModelFile("invalid GGUF file: too short")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur = _Cursor(mm, size)
        if cur.read(4, "magic") != GGUF_MAGIC:
            raise InvalidModelFile("invalid GGUF file: bad magic (not a GGUF model)")
        version = cur.unpack("<I", "version")
        if version not in (2, 3):
            raise InvalidModelFile(f"invalid GGUF file: unsupported version {version}")
        n_tensors = cur.unpack("<Q", "tensor count")
        n_kv = cur.unpack("<Q", "key/value count")
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise InvalidModelFile("invalid GGUF file: too many tensors or keys")
        info = GGUFInfo(version=version)
        for _ in range(n_kv):
            key = cur.string(MAX_KEY_LEN, "key")
            vtype = _value_type(cur.unpack("<I", key), key)
            value, length = _read_value(cur, vtype, key, keep_up_to=keep_up_to)
            if length is not None:
                info.array_lengths[key] = length
            else:
                info.metadata[key] = value
        alignment = info.metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise InvalidModelFile("invalid GGUF file: bad alignment")
        raw_tensors = []
        for _ in range(n_tensors):
            name = cur.string(MAX_KEY_LEN, "tensor name")
            n_dims = cur.unpack("<I", name)
            if not 1 <= n_dims <= MAX_DIMS:
                raise InvalidModelFile(f"invalid GGUF file: tensor {name!r} has {n_dims} dimensions")
            shape = tuple(cur.unpack("<Q", name) for _ in range(n_dims))
            raw_type = cur.unpack("<I", name)
            offset = cur.unpack("<Q", name)
            raw_tensors.append((name, shape, raw_type, offset))
        data_start = -(-cur.pos // alignment) * alignment
        info.tensors = _check_tensors(raw_tensors, data_start, size, alignment)
        if not info.tensors:  # checked last, so the walk above still sees every crafted header (T-09)
            raise InvalidModelFile("invalid GGUF file: it holds no tensors (no model weights)")  # T-36
        return info


def _check_tensors(raw: list[tuple[str, tuple[int, ...], int, int]], data_start: int, size: int,
                   alignment: int) -> list[TensorInfo]:
    tensors = []
    for name, shape, raw_type, offset in raw:
        try:
            qtype = GGMLQuantizationType(raw_type)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise InvalidModelFile(f"invalid GGUF file: tensor {name!r} has unknown type {raw_type}") from None
        elements = 1
        for d in shape:
            if d <= 0 or d > 1 << 40:
                raise InvalidModelFile(f"invalid GGUF file: tensor {name!r} has a bad shape")
            elements *= d
        if shape[0] % block or elements > 1 << 44:
            raise InvalidModelFile(f"invalid GGUF file: tensor {name!r} has a bad shape for its type")
        nbytes = elements // block * type_size
        if offset % alignment or data_start + offset + nbytes > size:
            raise InvalidModelFile(f"invalid GGUF file: tensor {name!r} data lies outside the file")
        tensors.append(TensorInfo(name, shape, qtype.name, offset, nbytes))
    ordered = sorted(tensors, key=lambda t: t.offset)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.offset + a.nbytes > b.offset:
            raise InvalidModelFile(f"invalid GGUF file: tensors {a.name!r} and {b.name!r} overlap")
    if len({t.name for t in tensors}) != len(tensors):
        raise InvalidModelFile("invalid GGUF file: duplicate tensor names")
    return tensors


def is_gguf(path: Path | str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def format_parameter_size(count: int) -> str:
    """Ollama's ``parameter_size``: ``134.52M``, ``8.0B``."""
    if count >= 1_000_000_000:
        return f"{count / 1e9:.1f}B"
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    if count >= 1_000:
        return f"{count / 1e3:.2f}K"
    return str(count)
