"""PEFT safetensors LoRA adapters in ``/api/create`` (``adapters`` naming ``adapter_config.json``
and ``adapter_model.safetensors``, as Ollama's create accepts them and ``skyllama create`` uploads
an ``ADAPTER`` folder).

At plan time :func:`check_peft` runs every check of the converter (``convert/lora.py``) on the
headers, so a bad adapter is a 400 before any byte of the response. :func:`convert_peft` then
writes the GGUF LoRA in a private folder, holds it to the same :func:`check_adapter` as an
uploaded GGUF one and only then stores it as a blob (which ``run_create`` prunes if the create
fails later): a conversion that fails leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ...convert.lora import convert_adapter, plan_adapter
from ...digests import Digest
from ...errors import BadRequest
from ...gguf_info import GGUFInfo, read_gguf
from ...manifest import MEDIA_ADAPTER, Layer
from .adapters import check_adapter
from .catalog import Catalog

LABEL = "adapter_model.safetensors"


def _paths(catalog: Catalog, files: dict[str, Digest]) -> dict[str, Path]:
    return {name: catalog.blobs.local_path(digest) for name, digest in files.items()}


def check_peft(catalog: Catalog, files: dict[str, Digest], base: GGUFInfo | None, *, weights_later: bool) -> None:
    """Raise a 400 unless the adapter in ``files`` converts for ``base``; with ``weights_later``
    (the base is converted by the same create) only the adapter's own consistency is checked."""
    if base is None and not weights_later:
        raise BadRequest(f"adapter {LABEL!r}: the model has no weights to apply it to")
    plan_adapter(_paths(catalog, files), base)


def convert_peft(catalog: Catalog, files: dict[str, Digest], base: GGUFInfo | None,
                 created: set[Digest]) -> Generator[dict[str, Any], None, Layer]:
    """Convert, check and store the adapter; yields Ollama's status lines, returns its layer."""
    if base is None:
        raise BadRequest(f"adapter {LABEL!r}: the model has no weights to apply it to")
    yield {"status": "converting adapter"}
    with tempfile.TemporaryDirectory(prefix="skyllama-adapter-") as tmp:
        out = Path(tmp) / "adapter.gguf"
        convert_adapter(_paths(catalog, files), base, out)
        info = read_gguf(out)
        check_adapter(info, base, LABEL)
        digest = catalog.blobs.put_file(out)
        created.add(digest)
    yield {"status": f"creating new layer {digest}"}
    return Layer(MEDIA_ADAPTER, digest, catalog.blobs.size(digest) or 0)
