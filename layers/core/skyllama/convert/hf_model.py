"""What every architecture converter shares: the staged model folder, config access and the plan.

A Hugging Face model folder arrives as uploaded blobs plus the client's file names. The small
text files (config, tokenizer, pooling config) are copied into a private staging folder under
their client names, so the ``gguf`` package's vocab helpers, which read a directory, can be used
as they are; the weights stay where they are and are read lazily.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from skyllama.convert.safetensors_reader import Checkpoint
from skyllama.errors import BadRequest, InvalidModelFile

MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024
"""Largest side file (tokenizer.json & co.) accepted; Gemma's tokenizer.json is about 33 MB."""

_SIDE_FILE_SUFFIXES = (".json", ".txt", ".jinja")


@dataclass
class PlannedTensor:
    """One GGUF tensor: its name, numpy shape, storage type, and how to load it when it is written."""

    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    load: Callable[[], np.ndarray]

    @property
    def numpy_dtype(self) -> type[np.floating[Any]]:
        return np.float16 if self.qtype == gguf.GGMLQuantizationType.F16 else np.float32

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.numpy_dtype).itemsize


class HFModel:
    """A staged model folder: ``config`` is config.json, ``stage`` holds the small side files."""

    def __init__(self, files: Mapping[str, Path], stage: Path) -> None:
        self.files = files
        self.stage = stage
        for name, path in files.items():
            # Only the small text files the converters read are staged; weights, ONNX exports,
            # READMEs and the like are left alone.
            if not name.endswith(_SIDE_FILE_SUFFIXES) or name.endswith(".index.json"):
                continue
            if path.stat().st_size > MAX_TEXT_FILE_BYTES:
                raise BadRequest(f"{name!r} is larger than {MAX_TEXT_FILE_BYTES} bytes")
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        if "config.json" not in files:
            raise BadRequest("config.json is missing: a safetensors model needs its config.json")
        config = self.json("config.json")
        if not isinstance(config, dict):
            raise InvalidModelFile("config.json is not a JSON object")
        self.config: dict[str, Any] = config

    def has(self, name: str) -> bool:
        return (self.stage / name).is_file()

    def json(self, name: str) -> Any:
        """A staged side file parsed as JSON; a bad one is a 400 naming it."""
        try:
            return json.loads((self.stage / name).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise BadRequest(f"{name} is missing") from e
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise InvalidModelFile(f"{name} is not valid UTF-8 JSON") from e

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures")
        if not (isinstance(archs, list) and archs and isinstance(archs[0], str)):
            raise InvalidModelFile("config.json has no 'architectures' list naming the model class")
        return archs[0]

    def int_param(self, *keys: str, default: int | None = None) -> int:
        """The first of ``keys`` present in config.json, which must be a positive integer."""
        for key in keys:
            if key in self.config:
                value = self.config[key]
                if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
                    raise InvalidModelFile(f"config.json: {key!r} must be a positive integer, got {value!r}")
                return value
        if default is None:
            raise InvalidModelFile(f"config.json: {keys[0]!r} is missing")
        return default

    def float_param(self, key: str, default: float) -> float:
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidModelFile(f"config.json: {key!r} must be a number, got {value!r}")
        return float(value)


def storage_type(name: str, shape: tuple[int, ...], kind: gguf.MODEL_TENSOR) -> gguf.GGMLQuantizationType:
    """llama.cpp's rule for an F16 conversion: matrices in F16; vectors, norms, biases and the
    position / token-type embeddings in F32 (``convert_hf_to_gguf.py`` ``prepare_tensors``)."""
    f32_kinds = (gguf.MODEL_TENSOR.POS_EMBD, gguf.MODEL_TENSOR.TOKEN_TYPES)
    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or kind in f32_kinds:
        return gguf.GGMLQuantizationType.F32
    return gguf.GGMLQuantizationType.F16


def plan_mapped(
    checkpoint: Checkpoint,
    arch: gguf.MODEL_ARCH,
    n_blocks: int,
    rename: Callable[[str], str | None],
    transform: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> Iterator[PlannedTensor]:
    """Plan every checkpoint tensor under its GGUF name via gguf's tensor-name map.

    ``rename`` normalises an HF name (or returns None to drop it); ``transform(hf_name, array)``
    may reorder values but must keep the shape.
    """
    tensor_map = gguf.get_tensor_name_map(arch, n_blocks)
    for hf_name in checkpoint.names():
        name = rename(hf_name)
        if name is None:
            continue
        found = tensor_map.get_type_and_name(name, try_suffixes=(".weight", ".bias"))
        if found is None:
            raise InvalidModelFile(f"tensor {hf_name!r} is not part of a {gguf.MODEL_ARCH_NAMES[arch]} model")
        kind, gguf_name = found
        info = checkpoint.info(hf_name)
        if info.dtype not in ("F32", "F16", "BF16"):
            raise InvalidModelFile(
                f"tensor {hf_name!r} has dtype {info.dtype}; only F32, F16 and BF16 convert"
            )

        def load(hf_name: str = hf_name) -> np.ndarray:
            array = checkpoint.read(hf_name)
            return transform(hf_name, array) if transform is not None else array

        yield PlannedTensor(gguf_name, info.shape, storage_type(gguf_name, info.shape, kind), load)


def add_special_vocab(writer: gguf.GGUFWriter, model: HFModel, n_vocab: int, load_merges: bool) -> None:
    """Special token ids, add-bos/eos flags, merges and the chat template via ``gguf.SpecialVocab``."""
    try:
        special = gguf.SpecialVocab(model.stage, load_merges=load_merges, n_vocab=n_vocab)
    except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise InvalidModelFile("tokenizer files could not be read: " + str(e)[:200]) from e
    special.add_to_gguf(writer, quiet=True)


def token_types_from_added(tokenizer: Mapping[str, Any], n_tokens: int) -> dict[int, gguf.TokenType]:
    """Types of tokenizer.json's ``added_tokens``: special ones CONTROL, the others USER_DEFINED."""
    types: dict[int, gguf.TokenType] = {}
    added = tokenizer.get("added_tokens") or []
    if not isinstance(added, list):
        raise InvalidModelFile("tokenizer.json: 'added_tokens' is not a list")
    for entry in added:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), int)
            and isinstance(entry.get("content"), str)
        ):
            raise InvalidModelFile("tokenizer.json: an added token lacks an integer id or its content")
        if not 0 <= entry["id"] < n_tokens:
            raise InvalidModelFile(f"tokenizer.json: added token id {entry['id']} is outside the vocabulary")
        special = entry.get("special") or looks_special(entry["content"])
        types[entry["id"]] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return types


def looks_special(token: str) -> bool:
    """Tokens some models forget to mark special (``does_token_look_special`` in llama.cpp)."""
    return token.startswith("<|") and token.endswith("|>")


def padded_vocabulary(tokens: list[str], tokenizer: Mapping[str, Any],
                      vocab_size: int) -> tuple[list[str], list[gguf.TokenType]]:
    """Tokens and their types, padded with unused ``[PAD<n>]`` tokens up to ``vocab_size``: models
    pad the embedding matrix past the tokenizer, and llama.cpp wants a token per row."""
    if len(tokens) > vocab_size:
        raise InvalidModelFile(f"tokenizer has {len(tokens)} tokens but config.json vocab_size is {vocab_size}")
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for i, kind in token_types_from_added(tokenizer, len(tokens)).items():
        types[i] = kind
    tokens = list(tokens)
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    return tokens, types
