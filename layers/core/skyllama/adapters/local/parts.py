"""Pull parts as files under a hidden folder of the models directory (``.skyllama/partial``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ...digests import Digest
from ...ports import PartStore


class LocalPartStore(PartStore):
    """Parts as files under a hidden folder of the models directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: Digest, n: int) -> Path:
        return self.root / digest.filename / f"part-{int(n)}"

    def size(self, digest: Digest, n: int) -> int:
        try:
            return self._path(digest, n).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, digest: Digest, n: int, data: bytes) -> None:
        path = self._path(digest, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(data)

    def truncate(self, digest: Digest, n: int) -> None:
        self._path(digest, n).unlink(missing_ok=True)

    def read(self, digest: Digest, n: int) -> Any:
        path = self._path(digest, n)
        return open(path, "rb") if path.exists() else open(os.devnull, "rb")  # noqa: SIM115

    def clear(self, digest: Digest) -> None:
        shutil.rmtree(self.root / digest.filename, ignore_errors=True)
