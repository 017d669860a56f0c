"""``HEAD|POST /api/blobs/:digest``: check for and upload content-addressed blobs.

Uploads are streamed to storage while hashed, never held in memory; a body that does not hash
to its digest is refused with 400 and nothing is kept.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ...digests import Digest
from ...errors import BlobNotFound, Cancelled, PayloadTooLarge
from ...services import ownership
from ..deps import Svc

router = APIRouter()

WRITE_BUFFER = 1 << 20


@router.head("/api/blobs/{digest:path}")
async def head_blob(digest: str, svc: Svc) -> Response:
    d = Digest.parse(digest)
    if await run_in_threadpool(svc.blobs.exists, d) and await run_in_threadpool(ownership.blob_visible, d):
        return Response(status_code=200)
    raise BlobNotFound(f'blob "{d}" not found')


@router.post("/api/blobs/{digest:path}")
async def upload_blob(digest: str, request: Request, svc: Svc) -> Response:
    d = Digest.parse(digest)
    exists = await run_in_threadpool(svc.blobs.exists, d)
    if exists and await run_in_threadpool(ownership.blob_visible, d):
        return Response(status_code=200)  # already there: the body is not read (as Ollama)
    limit = svc.settings.max_blob_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
    writer = await run_in_threadpool(ownership.verifying_writer if exists else svc.blobs.writer, d)
    with writer:
        buffer = bytearray()
        try:
            async for chunk in request.stream():
                buffer += chunk
                if writer.written + len(buffer) > limit:
                    raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
                if len(buffer) >= WRITE_BUFFER:
                    await run_in_threadpool(writer.write, bytes(buffer))
                    buffer.clear()
        except ClientDisconnect:
            raise Cancelled("request canceled") from None
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
        await run_in_threadpool(writer.commit)
    await run_in_threadpool(ownership.record_upload, d)
    return Response(status_code=201)
