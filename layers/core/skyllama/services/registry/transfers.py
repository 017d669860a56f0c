"""What pull and push work with, in one typed value (the composition root builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from ...names import ModelName
from ...ports import BlobStore, ManifestStore, PartStore, StateStore
from ...settings import Settings
from ..access.ownership import Ownership
from .client import RegistryClient
from .download import DownloadManager
from .outbound import Outbound


@dataclass(frozen=True)
class Transfers:
    """The stores a transfer reads and writes, the shared downloads, and the way out."""

    settings: Settings
    blobs: BlobStore
    manifests: ManifestStore
    state: StateStore
    ownership: Ownership
    parts: PartStore
    downloads: DownloadManager  # one per event loop (a worker job makes its own)
    outbound: Outbound

    def client(self, name: ModelName, insecure: bool) -> RegistryClient:
        """A registry client for ``name``'s host, under the outbound policy."""
        out = self.outbound
        return RegistryClient(name, insecure=insecure, policy=out.policy, inner=out.inner, dial_log=out.dialed)
