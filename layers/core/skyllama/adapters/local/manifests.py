"""Manifests in a local folder, as Ollama keeps them: ``<root>/manifests/<host>/<ns>/<model>/<tag>``.

Lookups are case-insensitive (Ollama's names are) while the stored path keeps the case it was
first written with. Writes go to a temporary file and are renamed into place, so a reader never
sees half a manifest.
"""

from __future__ import annotations

import builtins
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from ...errors import InvalidName
from ...names import ModelName
from ...ports import ManifestStore, StoredManifest

log = logging.getLogger(__name__)

MAX_MANIFEST_FILE = 1 << 20


class LocalManifestStore(ManifestStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / "manifests"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._problems: list[str] = []

    def _find(self, name: ModelName) -> Path | None:
        """The existing file for ``name``, matching each path part case-insensitively."""
        exact = self.root.joinpath(*name.storage_key().split("/"))  # the one place a manifest key is built
        if exact.is_file():
            return exact
        current = self.folder
        for part in name.path_parts():
            try:
                entries = os.listdir(current)
            except (FileNotFoundError, NotADirectoryError):
                return None
            match = next((e for e in sorted(entries) if e.lower() == part.lower()), None)
            if match is None:
                return None
            current = current / match
        return current if current.is_file() else None

    def _read(self, path: Path) -> StoredManifest:
        rel = path.relative_to(self.folder).parts
        name = ModelName.from_path_parts(rel)
        data = path.read_bytes()[: MAX_MANIFEST_FILE + 1]
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return StoredManifest(name=name, data=data, modified_at=modified)

    def get(self, name: ModelName) -> StoredManifest | None:
        path = self._find(name)
        if path is None:
            return None
        try:
            return self._read(path)
        except (OSError, InvalidName):
            return None

    def put(self, name: ModelName, data: bytes) -> None:
        target = self._find(name) or self.root.joinpath(*name.storage_key().split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def delete(self, name: ModelName) -> bool:
        path = self._find(name)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
        return True

    def list(self) -> list[StoredManifest]:
        found: list[StoredManifest] = []
        problems: list[str] = []
        for dirpath, _dirs, files in os.walk(self.folder):
            for fname in files:
                if fname.startswith("."):
                    continue  # temporary files of an in-progress write
                path = Path(dirpath) / fname
                rel = path.relative_to(self.folder)
                if len(rel.parts) != 4:
                    problems.append(str(rel))
                    continue
                try:
                    found.append(self._read(path))
                except (OSError, InvalidName) as e:
                    log.warning("skipping unreadable manifest %s: %s", rel, e)
                    problems.append(str(rel))
        self._problems = problems
        return sorted(found, key=lambda m: m.name.key)

    def problems(self) -> builtins.list[str]:
        return list(self._problems)
