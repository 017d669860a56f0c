"""Manifests in S3 under the keys of the local layout: ``<prefix>manifests/<host>/<ns>/<model>/<tag>``.

S3 keys are case-sensitive but model names are not. We keep Ollama's layout (so a bucket synced
from an Ollama folder works, and the reverse) rather than a lower-cased key or a separate index,
which would need a second write that can disagree with the manifest. A lookup first GETs the
exact key (the usual case: one request); on a miss it walks the four levels with delimiter
listings and matches each segment case-insensitively, exactly as the local store walks folders.
A miss therefore costs one GET and at most four (paginated) LISTs, each scoped to one level.

A manifest is written with one PutObject, which S3 makes visible atomically: a reader sees the
old or the new manifest, never half of one. A name that differs only in case from a stored one
overwrites that key, so ``Foo:Latest`` and ``foo:latest`` stay one model.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...errors import InvalidName, StoreError
from ...names import ModelName
from ...ports import ManifestStore, StoredManifest
from ._common import VENDOR_ERRORS, LazyClient, error_code, is_not_found, normalize_prefix, store_error

log = logging.getLogger(__name__)

MAX_MANIFEST_FILE = 1 << 20
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


class S3ManifestStore(ManifestStore):
    """Manifests in an S3 bucket, looked up case-insensitively; ``client`` is a boto3 S3 client."""

    def __init__(self, bucket: str, *, prefix: str = "", client: Any | None = None, max_workers: int = 16) -> None:
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.folder = self.prefix + "manifests/"
        self._client = LazyClient("s3", client)
        self._max_workers = max_workers
        self._problems: list[str] = []

    @property
    def client(self) -> Any:
        return self._client.get()

    def _children(self, folder: str) -> list[str]:
        """Names of the sub-folders and objects directly under ``folder`` (which ends in ``/``)."""
        names: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, Delimiter="/"
        )
        for page in pages:
            names += [p["Prefix"][len(folder) : -1] for p in page.get("CommonPrefixes", [])]
            names += [o["Key"][len(folder) :] for o in page.get("Contents", [])]
        return names

    def _matches(self, name: ModelName) -> list[str]:
        """Every stored key whose segments equal ``name``'s case-insensitively, in sorted order."""
        folders = [self.folder]
        for depth, part in enumerate(name.path_parts()):
            found: list[str] = []
            for folder in folders:
                for child in sorted(self._children(folder)):
                    if child.lower() == part.lower():
                        found.append(folder + child + ("/" if depth < 3 else ""))
            folders = found
        return folders

    def _find(self, name: ModelName) -> tuple[str, dict[str, Any]] | None:
        """The key holding ``name`` and its GetObject response, or ``None``."""
        exact = self.prefix + name.storage_key()  # the one place a manifest key is built
        got = self._get(exact)
        if got is not None:
            return exact, got
        for key in self._matches(name):
            got = self._get(key)
            if got is not None:
                return key, got
        return None

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            resp: dict[str, Any] = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{MAX_MANIFEST_FILE}"
            )
        except ClientError as e:
            if is_not_found(e):
                return None
            if error_code(e) == "InvalidRange":  # an empty object has no byte 0
                return {"Body": b"", "LastModified": None}
            raise store_error("S3", "get manifest", e) from e
        resp["Body"] = resp["Body"].read()
        return resp

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if is_not_found(e):
                return False
            raise
        return True

    def _stored(self, key: str, resp: dict[str, Any]) -> StoredManifest:
        name = ModelName.from_path_parts(key[len(self.folder) :].split("/"))
        modified = resp.get("LastModified") or datetime.now(tz=UTC)
        return StoredManifest(name=name, data=resp["Body"], modified_at=modified.astimezone(UTC))

    def get(self, name: ModelName) -> StoredManifest | None:
        try:
            found = self._find(name)
            if found is None:
                return None
            return self._stored(*found)
        except InvalidName:
            return None
        except VENDOR_ERRORS as e:
            raise store_error("S3", "get manifest", e) from e

    def put(self, name: ModelName, data: bytes) -> None:
        exact = self.prefix + name.storage_key()  # the one place a manifest key is built
        try:
            if self._exists(exact):
                key = exact
            else:
                matches = self._matches(name)
                key = matches[0] if matches else exact
            checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=MEDIA_TYPE, ChecksumSHA256=checksum
            )
        except VENDOR_ERRORS as e:
            raise store_error("S3", "put manifest", e) from e

    def delete(self, name: ModelName) -> bool:
        # Every case variant goes, so a stray duplicate cannot resurface as the same model.
        try:
            keys = self._matches(name)
            for key in keys:
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except VENDOR_ERRORS as e:
            raise store_error("S3", "delete manifest", e) from e
        return bool(keys)

    def list(self) -> list[StoredManifest]:
        keys: list[str] = []
        problems: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.folder):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(self.folder) :]
                    if rel.rsplit("/", 1)[-1].startswith("."):
                        continue  # not a manifest name (Ollama's temp files, .DS_Store)
                    if len(rel.split("/")) != 4:
                        problems.append(rel)
                        continue
                    keys.append(obj["Key"])
        except VENDOR_ERRORS as e:
            raise store_error("S3", "list manifests", e) from e

        def read(key: str) -> StoredManifest | None:
            rel = key[len(self.folder) :]
            try:
                got = self._get(key)
                if got is None:
                    return None  # deleted since the listing
                return self._stored(key, got)
            except (InvalidName, StoreError, ClientError, BotoCoreError) as e:
                log.warning("skipping unreadable manifest %s: %s", rel, type(e).__name__)
                problems.append(rel)
                return None

        with ThreadPoolExecutor(self._max_workers) as pool:
            found = [m for m in pool.map(read, keys) if m is not None]
        self._problems = problems
        return sorted(found, key=lambda m: m.name.key)

    def problems(self) -> builtins.list[str]:
        return list(self._problems)
