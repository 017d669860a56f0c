"""``pull``: fetch a model from a registry, as Ollama's ``PullModel`` does (``server/images.go``).

Progress, exactly as Ollama: ``pulling manifest``; per blob ``pulling <hex[:12]>`` with
``digest``, ``total`` and ``completed``; ``verifying sha256 digest``; ``writing manifest``;
``removing unused layers`` (only when the new manifest orphaned some); ``success``.

Safety (T-06, T-07, T-20): the registry's host is checked by the outbound policy before the
first event, so a forbidden name gets a real 4xx; the manifest is read with a byte cap and fully
validated (every digest, layer count, consistent sizes for repeated digests) before anything is
fetched; blobs are verified before any is committed, and the manifest is written last, so a
failed pull leaves no manifest and no unverified blob.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from ...digests import Digest
from ...errors import BadRequest, SkyllamaError
from ...manifest import Layer, Manifest
from ...names import ModelName
from ..access.ownership import Caller
from .client import RegistryClient
from .download import BlobDownload, PullCheckpoint
from .transfers import Transfers

Event = dict[str, Any]
TICK = 0.1


def unique_layers(manifest: Manifest, max_bytes: int) -> list[Layer]:
    """Layers then config, each digest once; a digest listed twice with different sizes, or a
    blob over ``max_bytes``, makes the manifest invalid."""
    seen: dict[str, Layer] = {}
    for layer in (*manifest.layers, manifest.config):
        if layer.size > max_bytes:
            raise BadRequest(f"invalid manifest: blob {layer.digest.short} is too large")
        first = seen.setdefault(layer.digest.hex, layer)
        if first.size != layer.size:
            raise BadRequest(f"invalid manifest: digest {layer.digest.short} listed with different sizes")
    return list(seen.values())


async def prepare(transfers: Transfers, name_text: str, insecure: bool, caller: Caller) -> tuple[ModelName, RegistryClient]:
    """Validate the name, the caller's right to write it and the registry host (all before the
    first progress line, so refusals get a real status)."""
    name = ModelName.parse(name_text)
    await anyio.to_thread.run_sync(transfers.ownership.check_write, caller, name)
    client = transfers.client(name, insecure)
    try:
        await anyio.to_thread.run_sync(client.check_base)
    except BaseException:
        await client.__aexit__(None, None, None)
        raise
    return name, client


async def pull_model(transfers: Transfers, name: ModelName, client: RegistryClient, caller: Caller, *,
                     scope: str = "") -> AsyncIterator[Event]:
    """Pull ``name`` through ``client`` (from :func:`prepare`), yielding Ollama's progress;
    ``scope`` keeps a worker job's partial downloads apart from any other's."""
    async with client:
        yield {"status": "pulling manifest"}
        data = await client.get_manifest(name.tag)
        manifest = Manifest.parse(data)
        layers = unique_layers(manifest, transfers.settings.max_blob_bytes)
        downloads: list[BlobDownload] = []
        for layer in layers:
            async for event in _fetch(transfers, name, client.insecure, layer, downloads, scope):
                yield event
        yield {"status": "verifying sha256 digest"}
        manager = transfers.downloads
        for download in downloads:
            async with manager.lock(download.digest):
                if not await anyio.to_thread.run_sync(transfers.blobs.exists, download.digest):
                    await anyio.to_thread.run_sync(download.commit, transfers.blobs)
        yield {"status": "writing manifest"}
        unused = await anyio.to_thread.run_sync(_write_manifest, transfers, name, data, manifest, caller)
        if unused:
            yield {"status": "removing unused layers"}
            await anyio.to_thread.run_sync(_remove, transfers, unused)
        yield {"status": "success"}


async def _fetch(transfers: Transfers, name: ModelName, insecure: bool, layer: Layer,
                 downloads: list[BlobDownload], scope: str) -> AsyncIterator[Event]:
    size = await anyio.to_thread.run_sync(transfers.blobs.size, layer.digest)
    if size is not None:
        yield {"status": f"pulling {layer.digest.short}", "digest": str(layer.digest),
               "total": size, "completed": size}
        return
    settings, parts = transfers.settings, transfers.parts.scoped(scope)
    download = transfers.downloads.join(layer.digest, lambda: BlobDownload(
        layer.digest, layer.size, lambda: transfers.client(name, insecure), parts, PullCheckpoint(transfers.state, scope),
        n_parts=settings.pull_parts, min_part=max(settings.pull_min_part_bytes, parts.min_part)))
    try:
        while not download.done.is_set():
            yield download.progress()
            with anyio.move_on_after(TICK):
                await download.done.wait()
        if download.error is not None:
            if isinstance(download.error, SkyllamaError):
                raise download.error
            raise SkyllamaError("download failed") from download.error
        yield download.progress()
        downloads.append(download)
    finally:
        download.release()


def _write_manifest(transfers: Transfers, name: ModelName, data: bytes, manifest: Manifest, caller: Caller) -> list[Digest]:
    """Write the manifest (last), claim the name, and list the old layers nothing uses now."""
    old = transfers.manifests.get(name)
    transfers.manifests.put(name, data)
    transfers.ownership.claim(caller, name)
    if old is None:
        return []
    try:
        candidates = set(Manifest.parse(old.data).blobs()) - set(manifest.blobs())
    except SkyllamaError:
        return []
    if not candidates or transfers.manifests.problems():
        return []
    used: set[Digest] = set()
    for stored in transfers.manifests.list():
        try:
            used.update(Manifest.parse(stored.data).blobs())
        except SkyllamaError:
            return []
    return sorted(candidates - used)


def _remove(transfers: Transfers, digests: list[Digest]) -> None:
    for digest in digests:
        transfers.blobs.delete(digest)
