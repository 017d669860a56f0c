"""``HEAD|POST /api/blobs/:digest``: check for and upload content-addressed blobs.

Uploads are streamed to storage while hashed, never held in memory; a body that does not hash
to its digest is refused with 400 and nothing is kept.

Presigned uploads (``backend=aws``; Lambda takes at most 6 MB per request) are for clients that
ask for them: ``?presign=1&size=<bytes>`` is answered ``202`` with ``{"upload": {"digest",
"size", "upload", "upload_id", "part_size", "parts": [{"part_number", "url", "size"}], "done",
"expires_in", "complete"}}``. The client PUTs each part's bytes to its URL, then ``POST``s
``{"upload", "upload_id"}`` (optionally ``"parts": [{"part_number", "etag"}]``) to ``complete``
(``/api/blobs/<digest>/complete``): the server reads the object back, checks its sha256 and only
then commits it under ``blobs/`` (``201``); a wrong digest is ``400`` and nothing is kept. Adding
``&upload=<upload>&upload_id=<id>`` resumes an interrupted upload: ``done`` lists the parts S3
already holds and ``parts`` has fresh URLs for the rest (``skyllama create`` does all this).

A client that just POSTs a body larger than ``SKYLLAMA_PRESIGN_THRESHOLD`` (the official
``ollama`` clients do) gets ``413`` naming the ways that work, before its body is read: a ``202``
would read as success to them (they store nothing and the next create fails), and a redirect
cannot help (a presigned S3 URL is signed for ``PUT``, a ``307`` keeps their ``POST``, and the
Go client does not resend a file body on a redirect). No multipart upload is opened for them.
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


def _presigns(rt: Rt) -> bool:
    return rt.settings.backend == "aws" and hasattr(rt.blobs, "presign_upload")


def _presign_plan(request: Request) -> tuple[int, str | None, str | None] | None:
    """``(size, upload, upload_id)`` when the client asks for presigned URLs, else ``None``."""
    query = request.query_params
    if query.get("presign") not in ("1", "true"):
        return None
    size = query.get("size") or request.headers.get("content-length", "")
    if not size.isdigit():
        raise BadRequest("presign needs ?size=<bytes>")
    upload, upload_id = query.get("upload"), query.get("upload_id")
    if (upload is None) != (upload_id is None):
        raise BadRequest("resuming an upload needs both ?upload= and ?upload_id=")
    return int(size), upload, upload_id


def too_large_for_the_api(size: int | None, threshold: int) -> PayloadTooLarge:
    """The 413 of a plain POST over the presign threshold: what to do instead."""
    what = "blob" if size is None else f"blob of {size} bytes"
    return PayloadTooLarge(
        f"{what} is too large to upload through this API (limit {threshold} bytes): "
        "upload it with `skyllama create -f Modelfile` (parts go straight to storage), "
        "or pull the model from a registry with /api/pull"
    )


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
    plan = _presign_plan(request) if _presigns(rt) else None
    if plan is not None:
        size, upload_key, upload_id = plan
        if size > limit:
            raise PayloadTooLarge(f"blob too large (limit {limit} bytes)")
        store: Any = rt.blobs  # S3BlobStore (PresignedUploads)
        if upload_key is not None and upload_id is not None:
            upload = await run_in_threadpool(store.resume_presigned, d, size, upload_key, upload_id)
        else:
            upload = await run_in_threadpool(store.presign_upload, d, size, ttl=rt.settings.registry_upload_ttl)
        upload["complete"] = f"/api/blobs/{d}/complete"
        return JSONResponse({"upload": upload}, status_code=202)
    threshold = rt.settings.presign_threshold
    if _presigns(rt) and declared and declared.isdigit() and int(declared) > threshold:
        raise too_large_for_the_api(int(declared), threshold)
    # a body of unknown length (chunked: Ollama's Go CLI sends a file so) is cut at the threshold
    cap = min(limit, threshold) if _presigns(rt) else limit
    writer = await run_in_threadpool(verifying_writer if exists else rt.blobs.writer, d)
    with writer:
        try:
            await receive_body(request, writer.write, 0, cap)
        except PayloadTooLarge:
            if cap < limit:
                raise too_large_for_the_api(None, threshold) from None
            raise
        await run_in_threadpool(writer.commit)
    await run_in_threadpool(rt.ownership.record_upload, who, d)
    return Response(status_code=201)
