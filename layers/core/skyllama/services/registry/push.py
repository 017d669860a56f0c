"""``push``: send a local model to a registry, as Ollama's ``PushModel`` does (``server/upload.go``).

Progress: ``retrieving manifest``; per blob (layers, then config) ``pushing <hex[:12]>`` with
``digest``, ``total`` and ``completed``; ``pushing manifest``; ``success``.

Each blob is first checked with ``HEAD``; a missing one is mounted from the repository it came
from (``?mount=…&from=…``, when the layer records one) or uploaded with ``POST`` then ``PATCH``
chunks (``Content-Range: start-end``) and a final ``PUT ?digest=``. Only the model's owner may
push it (T-08), and only to a registry the outbound policy allows (checked before the first line).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

from ...errors import BadRequest, ModelNotFound
from ...manifest import MANIFEST_MEDIA_TYPE, Layer, Manifest
from ...names import ModelName
from ..access.ownership import Caller
from .client import RegistryClient, RegistryError, expect
from .transfers import Transfers

UPLOAD_CHUNK = 8 << 20
Event = dict[str, Any]


async def prepare(transfers: Transfers, name_text: str, insecure: bool,
                  caller: Caller) -> tuple[ModelName, bytes, RegistryClient]:
    """Find the model, check the owner and the registry host; all before the first line."""
    name = ModelName.parse(name_text)
    message = f"model '{name_text}' not found"
    stored = await anyio.to_thread.run_sync(transfers.manifests.get, name)
    if stored is None:
        raise ModelNotFound(message)
    await anyio.to_thread.run_sync(transfers.ownership.check_push, caller, stored.name, message)
    client = transfers.client(name, insecure)
    try:
        await anyio.to_thread.run_sync(client.check_base)
    except BaseException:
        await client.__aexit__(None, None, None)
        raise
    return name, stored.data, client


async def push_model(transfers: Transfers, name: ModelName, data: bytes, client: RegistryClient) -> AsyncIterator[Event]:
    """Push the manifest ``data`` of ``name`` through ``client``, yielding Ollama's progress."""
    async with client:
        yield {"status": "retrieving manifest"}
        manifest = Manifest.parse(data)
        seen: set[str] = set()
        for layer in (*manifest.layers, manifest.config):
            if layer.digest.hex in seen:
                continue
            seen.add(layer.digest.hex)
            async for event in _push_blob(transfers, client, layer):
                yield event
        yield {"status": "pushing manifest"}
        response = await client.request("PUT", client.url(f"/manifests/{name.tag}"),
                                        headers={"Content-Type": MANIFEST_MEDIA_TYPE}, body=data)
        try:
            await expect(response, 200, 201, 202)
        finally:
            await response.aclose()
        yield {"status": "success"}


def _progress(layer: Layer, completed: int) -> Event:
    return {"status": f"pushing {layer.digest.short}", "digest": str(layer.digest),
            "total": layer.size, "completed": completed}


async def _push_blob(transfers: Transfers, client: RegistryClient, layer: Layer) -> AsyncIterator[Event]:
    url = client.url(f"/blobs/{layer.digest}")
    response = await client.request("HEAD", url)
    await response.aclose()
    if response.status_code == 200:
        yield _progress(layer, layer.size)
        return
    if response.status_code != 404:
        await expect(response, 200, 404)
    size = await anyio.to_thread.run_sync(transfers.blobs.size, layer.digest)
    if size is None:
        raise BadRequest(f"blob {layer.digest.short} of the model is missing locally")
    start = client.url("/blobs/uploads/")
    if layer.from_:
        try:
            source = ModelName.parse(layer.from_)
            start = start.copy_merge_params({"mount": str(layer.digest),
                                             "from": f"{source.namespace}/{source.model}"})
        except BadRequest:
            pass
    response = await client.request("POST", start)
    try:
        if response.status_code == 201:
            yield _progress(layer, size)
            return
        await expect(response, 202)
        location = _location(response, start)
    finally:
        await response.aclose()
    yield _progress(layer, 0)
    offset = 0
    while offset < size:
        chunk = await anyio.to_thread.run_sync(_read, transfers, layer, offset, min(UPLOAD_CHUNK, size - offset))
        if not chunk:
            raise BadRequest(f"blob {layer.digest.short} changed while it was pushed")
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        response = await client.request("PATCH", location, headers=headers, body=chunk)
        try:
            await expect(response, 202, 204)
            location = _location(response, location)
        finally:
            await response.aclose()
        offset += len(chunk)
        yield _progress(layer, offset)
    final = location.copy_merge_params({"digest": str(layer.digest)})
    response = await client.request("PUT", final, headers={"Content-Type": "application/octet-stream"}, body=b"")
    try:
        await expect(response, 201, 204)
    finally:
        await response.aclose()
    yield _progress(layer, size)


def _location(response: httpx.Response, base: httpx.URL) -> httpx.URL:
    location = response.headers.get("docker-upload-location") or response.headers.get("location")
    if not location:
        raise RegistryError("registry answered an upload without a Location")
    return base.join(location)


def _read(transfers: Transfers, layer: Layer, offset: int, length: int) -> bytes:
    with transfers.blobs.open(layer.digest, offset) as f:
        data: bytes = f.read(length)
        return data
