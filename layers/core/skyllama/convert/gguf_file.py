"""A GGUF written whole or not at all: under a temporary name in the target's folder, renamed
over the target once complete, removed on any failure (T-37: nothing half-written remains)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf


@contextmanager
def gguf_written(out_path: Path, arch: str, prefix: str) -> Iterator[gguf.GGUFWriter]:
    """A writer for ``out_path``; the caller writes header, metadata and tensors inside the block."""
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=prefix, suffix=".gguf.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        yield writer
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
