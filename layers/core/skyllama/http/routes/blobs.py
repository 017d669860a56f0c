"""``HEAD|POST /api/blobs/:digest``: check for and upload content-addressed blobs.

Uploads are streamed to storage while hashed, never held in memory; a body that does not hash
to its digest is refused with 400 and nothing is kept.

Presigned uploads (``backend=aws``; Lambda takes at most 6 MB per request): when the declared
``Content-Length`` exceeds ``SKYLLAMA_PRESIGN_THRESHOLD``, or the client asks with
``?presign=1&size=<bytes>``, the body is not read and the answer is ``202`` with
``{"upload": {"digest", "size", "upload", "upload_id", "part_size", "parts": [{"part_number",
"url", "size"}], "expires_in", "complete"}}``. The client PUTs each part's bytes to its URL, then
``POST``s ``{"upload", "upload_id"}`` (optionally ``"parts": [{"part_number", "etag"}]``) to
``complete`` (``/api/blobs/<digest>/complete``): the server reads the object back, checks its
sha256 and only then commits it under ``blobs/`` (``201``); a wrong digest is ``400`` and
nothing is kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...digests import Digest
from ...errors import BadRequest, BlobNotFound, PayloadTooLarge
from ...services.access.ownership import verifying_writer
from ..deps import Rt, Who
from ..uploads import receive_body

router = APIRouter()


@router.head("/api/blobs/{digest:path}")
async def head_blob(digest: str, rt: Rt, who: Who) -> Response:
    d = Digest.parse(digest)
    if await run_in_threadpool(rt.blobs.exists, d) and await run_in_threadpool(rt.ownership.blob_visible, who, d):
        return Response(status_code=200)
    raise BlobNotFound(f'blob "{d}" not found')


def _presign_size(request: Request, rt: Rt) -> int | None:
    """The size to presign for, or ``None`` when the upload goes through the API as usual."""
    if rt.settings.backend != "aws" or not hasattr(rt.blobs, "presign_upload"):
        return None
    declared = request.headers.get("content-length", "")
    if request.query_params.get("presign") in ("1", "true"):
        size = request.query_params.get("size") or declared
        if not size.isdigit():
            raise BadRequest("presign needs ?size=<bytes>")
        return int(size)
    if declared.isdigit() and int(declared) > rt.settings.presign_threshold:
        return int(declared)
    return None


@router.post("/api/blobs/{digest:path}/complete")
async def complete_blob(digest: str, request: Request, rt: Rt, who: Who) -> Response:
    """Verify a presigned upload's sha256 and commit it (skyllama's own route)."""
    d = Digest.parse(digest)
    if not hasattr(rt.blobs, "complete_presigned"):
        raise BadRequest("presigned uploads need backend=aws")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("invalid JSON body") from None
    if not isinstance(body, dict) or not isinstance(body.get("upload"), str) \
            or not isinstance(body.get("upload_id"), str):
        raise BadRequest("'upload' and 'upload_id' are required")
    parts = body.get("parts")
    if parts is not None:
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise BadRequest("'parts' must be a list of {part_number, etag}")
        parts = [{"PartNumber": int(p.get("part_number", 0)), "ETag": str(p.get("etag", ""))} for p in parts]
    store: Any = rt.blobs  # S3BlobStore (PresignedUploads)
    await run_in_threadpool(store.complete_presigned, d, body["upload"], body["upload_id"], parts)
    await run_in_threadpool(rt.ownership.record_upload, who, d)
    return Response(status_code=201)


@router.post("/api/blobs/{digest:path}")
async def upload_blob(digest: str, request: Request, rt: Rt, who: Who) -> Response:
    d = Digest.parse(digest)
    exists = await run_in_threadpool(rt.blobs.exists, d)
    if exists and await run_in_threadpool(rt.ownership.blob_visible, who, d):
        return Response(status_code=200)  # already there: the body is not read (as Ollama)
    limit = rt.settings.max_blob_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
    presign = _presign_size(request, rt)
    if presign is not None:
        if presign > limit:
            raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
        store: Any = rt.blobs  # S3BlobStore (PresignedUploads)
        upload = await run_in_threadpool(store.presign_upload, d, presign)
        upload["complete"] = f"/api/blobs/{d}/complete"
        return JSONResponse({"upload": upload}, status_code=202)
    writer = await run_in_threadpool(verifying_writer if exists else rt.blobs.writer, d)
    with writer:
        await receive_body(request, writer.write, 0, limit)
        await run_in_threadpool(writer.commit)
    await run_in_threadpool(rt.ownership.record_upload, who, d)
    return Response(status_code=201)
