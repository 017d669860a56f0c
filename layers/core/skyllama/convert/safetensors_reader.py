"""A bounded, pure-Python validator and lazy reader of safetensors checkpoints.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 ``N``, then
``N`` bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data section, which the offsets index. Everything a client uploads is checked here
before numpy maps a single byte of it, and every failure is an ``InvalidModelFile`` that names
the file by the client's name (never a server path) and says what is wrong.

Tensors are read one at a time through ``numpy.memmap``, so a model never has to fit in RAM.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyllama.errors import InvalidModelFile

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest JSON header accepted; real checkpoints stay far below (Llama-70B shards: ~100 KB)."""

MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_DIMS = 8
INDEX_NAME = "model.safetensors.index.json"

# safetensors dtype -> (numpy dtype as stored, bytes per element). BF16 has no numpy dtype: it
# is stored as raw u16 and widened to float32 on read.
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("i1", 1),
    "U8": ("u1", 1),
    "BOOL": ("?", 1),
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: ``begin``/``end`` are absolute byte offsets in its file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


class SafetensorsFile:
    """One validated ``.safetensors`` file; ``tensors`` maps names to their ``TensorInfo``."""

    def __init__(self, path: Path, display_name: str) -> None:
        self.path = path
        self.display_name = display_name
        self.metadata: dict[str, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self._validate()

    def _fail(self, problem: str) -> InvalidModelFile:
        return InvalidModelFile(f"invalid safetensors file {self.display_name!r}: {problem}")

    def _validate(self) -> None:
        try:
            file_size = self.path.stat().st_size
            with self.path.open("rb") as f:
                prefix = f.read(8)
                if len(prefix) < 8:
                    raise self._fail("file is shorter than the 8-byte header length")
                (header_len,) = struct.unpack("<Q", prefix)
                if header_len == 0:
                    raise self._fail("header length is zero")
                if header_len > MAX_HEADER_BYTES:
                    raise self._fail(f"header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")
                if 8 + header_len > file_size:
                    raise self._fail(
                        f"header length {header_len} runs past the end of the file ({file_size} bytes)"
                    )
                raw = f.read(header_len)
        except OSError as e:
            raise self._fail("file could not be read") from e
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise self._fail("header is not valid UTF-8 JSON") from e
        if not isinstance(header, dict):
            raise self._fail("header is not a JSON object")
        data_start = 8 + header_len
        self._parse_entries(header, data_start, file_size - data_start)

    def _parse_entries(self, header: dict[str, object], data_start: int, data_size: int) -> None:
        meta = header.pop("__metadata__", {})
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise self._fail("__metadata__ must be an object of strings")
        self.metadata = meta
        spans: list[tuple[int, int, str]] = []
        for name, entry in header.items():
            if not isinstance(entry, dict):
                raise self._fail(f"tensor {name!r}: entry is not an object")
            dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
            if not isinstance(dtype, str) or dtype not in DTYPES:
                raise self._fail(
                    f"tensor {name!r}: unsupported dtype {dtype!r} (supported: {', '.join(DTYPES)})"
                )
            if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_is_count(d) for d in shape)):
                raise self._fail(
                    f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} non-negative integers"
                )
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
                raise self._fail(f"tensor {name!r}: data_offsets must be two non-negative integers")
            begin, end = offsets
            if begin > end:
                raise self._fail(f"tensor {name!r}: data_offsets begin {begin} is after end {end}")
            expected = math.prod(shape) * DTYPES[dtype][1]
            if end - begin != expected:
                raise self._fail(
                    f"tensor {name!r}: byte length {end - begin} does not match shape {shape} of {dtype} "
                    f"({expected} bytes)"
                )
            if end > data_size:
                raise self._fail(
                    f"tensor {name!r}: data ends at {end}, past the {data_size}-byte data section"
                )
            spans.append((begin, end, name))
            self.tensors[name] = TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end)
        # Sorted by start, a tensor overlaps an earlier one iff it starts before the furthest end
        # seen so far (empty tensors occupy no bytes and cannot overlap).
        spans.sort()
        furthest, furthest_name = 0, ""
        for begin, end, name in spans:
            if begin < furthest and end > begin:
                raise self._fail(f"tensors {furthest_name!r} and {name!r} overlap")
            if end > furthest:
                furthest, furthest_name = end, name

    def read(self, name: str) -> np.ndarray:
        """The tensor as a numpy array: a read-only memmap view, or float32 for BF16."""
        info = self.tensors[name]
        stored, _ = DTYPES[info.dtype]
        if info.n_elements == 0:
            return np.zeros(info.shape, dtype=np.float32 if info.dtype == "BF16" else stored)
        array = np.memmap(self.path, dtype=stored, mode="r", offset=info.begin, shape=info.shape)
        if info.dtype == "BF16":
            # bfloat16 is the top half of a float32: shift the 16 bits into place.
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Checkpoint:
    """All tensors of a (possibly sharded) checkpoint, by name, each read on demand."""

    def __init__(self, shards: Mapping[str, SafetensorsFile], owner: Mapping[str, str]) -> None:
        self._shards = shards
        self._owner = owner

    def names(self) -> list[str]:
        """Tensor names in a stable order (by shard, then by offset), as they will be written."""
        return sorted(self._owner, key=lambda n: (self._owner[n], self.info(n).begin))

    def info(self, name: str) -> TensorInfo:
        return self._shards[self._owner[name]].tensors[name]

    def read(self, name: str) -> np.ndarray:
        """One tensor, loaded lazily from its shard."""
        return self._shards[self._owner[name]].read(name)

    def __contains__(self, name: object) -> bool:
        return name in self._owner

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def open_checkpoint(files: Mapping[str, Path]) -> Checkpoint:
    """Validate the safetensors files among ``files`` (client name -> local path) and index them.

    With ``model.safetensors.index.json`` the index's ``weight_map`` decides which shard holds
    each tensor, and every shard it names must be uploaded; without it every top-level
    ``*.safetensors`` file is used and a tensor name may appear only once.
    """
    if INDEX_NAME in files:
        weight_map = _read_index(files[INDEX_NAME])
        shard_names = sorted(set(weight_map.values()))
        missing = [s for s in shard_names if s not in files]
        if missing:
            raise InvalidModelFile(f"{INDEX_NAME} names shard {missing[0]!r}, which was not uploaded")
    else:
        weight_map = None
        shard_names = sorted(n for n in files if n.endswith(".safetensors") and "/" not in n)
    if not shard_names:
        raise InvalidModelFile("no .safetensors weights were uploaded")
    shards = {name: SafetensorsFile(files[name], name) for name in shard_names}
    owner: dict[str, str] = {}
    if weight_map is not None:
        for tensor, shard in weight_map.items():
            if tensor not in shards[shard].tensors:
                raise InvalidModelFile(f"{INDEX_NAME} places tensor {tensor!r} in {shard!r}, which lacks it")
            owner[tensor] = shard
    else:
        for shard, sf in shards.items():
            for tensor in sf.tensors:
                if tensor in owner:
                    raise InvalidModelFile(
                        f"tensor {tensor!r} appears in both {owner[tensor]!r} and {shard!r}"
                    )
                owner[tensor] = shard
    return Checkpoint(shards, owner)


def _read_index(path: Path) -> dict[str, str]:
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            raise InvalidModelFile(f"{INDEX_NAME} is larger than {MAX_INDEX_BYTES} bytes")
        index = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InvalidModelFile(f"{INDEX_NAME} is not valid UTF-8 JSON") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise InvalidModelFile(f"{INDEX_NAME} has no weight_map object of tensor name -> file name")
    return weight_map
