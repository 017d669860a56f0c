"""T-20 crash-safe pull/create: the manifest commit is atomic (a failed write leaves the previous
manifest whole, never half a file) on the local folder and on S3 under moto, and a corrupted or
faulted pull commits nothing. The full fault matrix (every store call failing in turn over the
create, upload, copy, delete, pull and push flows, plus a crash between blobs and manifest) is
``test_fault_injection.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults import aws_stores, moto_aws, throttle

from skyllama.adapters.local.manifests import LocalManifestStore
from skyllama.errors import StoreError
from skyllama.names import ModelName

NAME = ModelName.parse("tiny:v1")
OLD, NEW = b'{"schemaVersion":2,"old":true}', b'{"schemaVersion":2,"new":true,"pad":"' + b"x" * 5000 + b'"}'


def test_local_manifest_write_failing_midway_keeps_the_old_one(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalManifestStore(tmp_path)
    store.put(NAME, OLD)

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.put(NAME, NEW)
    monkeypatch.undo()
    assert store.get(NAME).data == OLD  # type: ignore[union-attr]
    assert [m.data for m in store.list()] == [OLD] and store.problems() == []


def test_s3_manifest_write_throttled_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, _blobs, manifests, _state = aws_stores(tmp_path / "cache")
        manifests.put(NAME, OLD)
        throttle(s3, "PutObject", kind="s3", times=10)
        with pytest.raises(StoreError):
            manifests.put(NAME, NEW)
        assert manifests.get(NAME).data == OLD
