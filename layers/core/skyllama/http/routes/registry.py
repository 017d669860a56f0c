"""The ``/v2/`` registry (Docker distribution API v2, as Ollama speaks it) and ``/api/pull|push``.

``/v2/`` routes (``<repo>`` is ``<namespace>/<model>`` or ``<model>``, meaning ``library``):

- ``GET|HEAD /v2/`` → 200 ``{}`` with ``Docker-Distribution-API-Version: registry/2.0``
- ``GET|HEAD /v2/<repo>/manifests/<tag|digest>``; ``PUT`` stores a validated manifest
- ``GET|HEAD /v2/<repo>/blobs/<digest>`` with ``Range`` (206, ``Content-Range``)
- ``POST /v2/<repo>/blobs/uploads/`` (``?mount=&from=``, or ``?digest=`` with the whole body),
  ``PATCH|PUT|GET|DELETE /v2/<repo>/blobs/uploads/<id>``
- ``GET /v2/<repo>/tags/list``

Errors carry Docker's body ``{"errors": [{"code", "message", "detail"}]}``. Which key may read
or write is decided by the auth middleware's route policy (``/v2*``); writes also pass through
:func:`require_registry_write` and the ownership rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...composition import Runtime
from ...digests import Digest
from ...errors import (
    BlobNotFound,
    DigestMismatch,
    Forbidden,
    InvalidDigest,
    InvalidName,
    NotFound,
    PayloadTooLarge,
    SkyllamaError,
    Unauthorized,
)
from ...manifest import MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES
from ...names import ModelName
from ...services.access.ownership import Caller
from ...services.jobs.runner import follow_job, submit_or_attach
from ...services.registry import pull, push
from ...services.registry.server import RegistryProblem, RegistryServer, UploadSession, parse_range
from ..deps import RegistryWho, Rt, Who
from ..ndjson import respond
from ..types import NamedRequest
from ..uploads import receive_body

router = APIRouter()

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
# Blob GETs are read and sent in large chunks: one worker-thread hop and one transport write each.
READ_CHUNK = 4 << 20


class TransferRequest(NamedRequest):
    """``/api/pull`` and ``/api/push``: ``model``, ``insecure`` (http instead of https), ``stream``."""

    insecure: bool = False
    stream: bool | None = None


@router.post("/api/pull")
async def api_pull(req: TransferRequest, rt: Rt, who: Who) -> Response:
    name, client = await pull.prepare(rt.transfers, req.model_name(), req.insecure, who)
    if rt.stores.jobs is not None:
        await client.__aexit__(None, None, None)
        return await _as_job(rt, "pull", name, req, who)
    return await respond(pull.pull_model(rt.transfers, name, client, who), req.stream)


@router.post("/api/push")
async def api_push(req: TransferRequest, rt: Rt, who: Who) -> Response:
    name, data, client = await push.prepare(rt.transfers, req.model_name(), req.insecure, who)
    if rt.stores.jobs is not None:
        await client.__aexit__(None, None, None)
        return await _as_job(rt, "push", name, req, who)
    return await respond(push.push_model(rt.transfers, name, data, client), req.stream)


async def _as_job(rt: Runtime, job_type: str, name: ModelName, req: TransferRequest, who: Caller) -> Response:
    """AWS: the worker runs the transfer (past API Gateway's 29 s and Lambda's 15 minutes); the
    response follows the job, and the same request sent again follows it on to ``success``."""
    request = {"model": str(name), "insecure": req.insecure}
    assert rt.stores.jobs is not None
    job_id = await run_in_threadpool(submit_or_attach, rt.jobs, job_type, request, rt.stores.jobs, who,
                                     rerun_success=True)
    follow = follow_job(rt.state, job_id, timeout=rt.settings.job_follow_seconds, announce=False)
    return await respond(follow, req.stream)


def require_registry_write(request: Request) -> None:
    """Hook for registry writes. Keys and scopes are enforced by the auth middleware's route
    policy (``/v2*`` writes need ``manage``) and names by :mod:`ownership`; anything extra goes here."""


def docker_error(exc: SkyllamaError) -> tuple[int, dict[str, object]]:
    """``(status, {"errors": [{"code", "message", "detail"}]})`` for any skyllama error."""
    if isinstance(exc, RegistryProblem):
        code = exc.code
    elif isinstance(exc, BlobNotFound):
        code = "BLOB_UNKNOWN"
    elif isinstance(exc, NotFound):
        code = "MANIFEST_UNKNOWN"
    elif isinstance(exc, InvalidDigest | DigestMismatch):
        code = "DIGEST_INVALID"
    elif isinstance(exc, InvalidName):
        code = "NAME_INVALID"
    elif isinstance(exc, Forbidden):
        code = "DENIED"
    elif isinstance(exc, Unauthorized):
        code = "UNAUTHORIZED"
    elif isinstance(exc, PayloadTooLarge):
        code = "SIZE_INVALID"
    else:
        code = "UNSUPPORTED" if exc.status < 500 else "UNKNOWN"
    return exc.status, {"errors": [{"code": code, "message": exc.message, "detail": None}]}


def _error(exc: SkyllamaError, head: bool) -> Response:
    status, body = docker_error(exc)
    if head:
        return Response(status_code=status, headers=API_VERSION)
    return JSONResponse(body, status_code=status, headers=API_VERSION)


def _split(rest: str) -> tuple[str | None, str, list[str]]:
    """``ns/model/blobs/x`` → ``("ns", "model", ["blobs", "x"])``; 404 for other shapes."""
    parts = rest.split("/")
    for i, part in enumerate(parts):
        if part in ("manifests", "blobs", "tags") and i in (1, 2):
            repo, tail = parts[:i], parts[i:]
            if len(tail) == 2 or (len(tail) == 3 and tail[:2] == ["blobs", "uploads"]):
                return (repo[0] if len(repo) == 2 else None), repo[-1], tail
    raise RegistryProblem("repository name not known to registry", "NAME_UNKNOWN", 404)


@router.api_route("/v2/", methods=["GET", "HEAD"])
@router.api_route("/v2", methods=["GET", "HEAD"])
async def v2_base() -> Response:
    return JSONResponse({}, headers=API_VERSION)


@router.api_route("/v2/{rest:path}", methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"])
async def v2(rest: str, request: Request, rt: Rt, who: RegistryWho) -> Response:
    head = request.method == "HEAD"
    try:
        namespace, model, tail = _split(rest)
        ModelName.parse(f"{namespace or 'library'}/{model}")
        if request.method not in ("GET", "HEAD"):
            require_registry_write(request)
        return await _dispatch(request, rt.registry, who, namespace, model, tail)
    except SkyllamaError as exc:
        return _error(exc, head)


async def _dispatch(request: Request, reg: RegistryServer, who: Caller, ns: str | None, model: str,
                    tail: list[str]) -> Response:
    method, kind = request.method, tail[0]
    if kind == "manifests" and len(tail) == 2:
        if method in ("GET", "HEAD"):
            return await _get_manifest(reg, who, ns, model, tail[1], method == "HEAD")
        if method == "PUT":
            return await _put_manifest(request, reg, who, ns, model, tail[1])
    elif kind == "tags" and tail == ["tags", "list"] and method == "GET":
        return await _tags(reg, who, ns, model)
    elif kind == "blobs" and len(tail) == 2 and tail[1] != "uploads" and method in ("GET", "HEAD"):
        return await _get_blob(request, reg, who, Digest.parse(tail[1]), method == "HEAD")
    elif kind == "blobs" and tail[1] == "uploads" and len(tail) <= 3 and (len(tail) == 2 or not tail[2]):
        if method == "POST":
            return await _start_upload(request, reg, who, ns, model)
    elif kind == "blobs" and tail[1] == "uploads" and len(tail) == 3:
        return await _upload(request, reg, who, ns, model, tail[2])
    raise RegistryProblem("the operation is unsupported", "UNSUPPORTED", 405)


async def _get_manifest(reg: RegistryServer, who: Caller, ns: str | None, model: str, ref: str,
                        head: bool) -> Response:
    stored = await run_in_threadpool(reg.find_manifest, who, ns, model, ref)
    headers = {**API_VERSION, "Docker-Content-Digest": str(Digest.of_bytes(stored.data)),
               "Content-Type": MANIFEST_MEDIA_TYPE, "Content-Length": str(len(stored.data))}
    return Response(b"" if head else stored.data, headers=headers)


async def _put_manifest(request: Request, reg: RegistryServer, who: Caller, ns: str | None, model: str,
                        tag: str) -> Response:
    data = await _read_capped(request, MAX_MANIFEST_BYTES)
    digest = await run_in_threadpool(reg.put_manifest, who, ns, model, tag, data)
    location = _url(request, ns, model, f"manifests/{digest}")
    return Response(status_code=201, headers={**API_VERSION, "Location": location, "Docker-Content-Digest": str(digest)})


async def _tags(reg: RegistryServer, who: Caller, ns: str | None, model: str) -> Response:
    repo, tags = await run_in_threadpool(reg.tags, who, ns, model)
    if not tags:
        raise RegistryProblem("repository name not known to registry", "NAME_UNKNOWN", 404)
    return JSONResponse({"name": f"{repo.namespace}/{repo.model}", "tags": tags}, headers=API_VERSION)


async def _get_blob(request: Request, reg: RegistryServer, who: Caller, digest: Digest, head: bool) -> Response:
    size = await run_in_threadpool(reg.blob_readable, who, digest)
    if size is None:
        raise RegistryProblem("blob unknown to registry", "BLOB_UNKNOWN", 404)
    headers = {**API_VERSION, "Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes",
               "ETag": f'"{digest}"', "Content-Type": "application/octet-stream"}
    try:
        span = parse_range(request.headers.get("range"), size)
    except RegistryProblem as e:
        status, body = docker_error(e)
        return JSONResponse(body, status_code=status, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = span if span else (0, size - 1)
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if head or length == 0:
        return Response(status_code=status, headers=headers)
    stream = await run_in_threadpool(reg.blobs.open, digest, start)

    def chunks() -> Iterator[bytes]:
        left = length
        with stream:
            while left > 0 and (chunk := stream.read(min(READ_CHUNK, left))):
                left -= len(chunk)
                yield chunk

    return StreamingResponse(chunks(), status_code=status, headers=headers)


def _url(request: Request, ns: str | None, model: str, path: str) -> str:
    repo = f"{ns}/{model}" if ns else model
    return f"{str(request.base_url).rstrip('/')}/v2/{repo}/{path}"


def _session_headers(request: Request, ns: str | None, model: str, session: UploadSession) -> dict[str, str]:
    location = _url(request, ns, model, f"blobs/uploads/{session.id}")
    return {**API_VERSION, "Location": location, "Docker-Upload-UUID": session.id,
            "Range": f"0-{max(session.offset - 1, 0)}", "Content-Length": "0"}


async def _start_upload(request: Request, reg: RegistryServer, who: Caller, ns: str | None, model: str) -> Response:
    query = request.query_params
    if query.get("mount"):
        digest = Digest.parse(query["mount"])
        if await run_in_threadpool(reg.blob_readable, who, digest) is not None:
            location = _url(request, ns, model, f"blobs/{digest}")
            return Response(status_code=201, headers={**API_VERSION, "Location": location,
                                                       "Docker-Content-Digest": str(digest)})
    session = await run_in_threadpool(reg.sessions.open, (ns or "library", model))
    if query.get("digest"):
        return await _finish(request, reg, who, ns, model, session)
    return Response(status_code=202, headers=_session_headers(request, ns, model, session))


async def _upload(request: Request, reg: RegistryServer, who: Caller, ns: str | None, model: str,
                  upload_id: str) -> Response:
    sessions = reg.sessions
    session = sessions.get(upload_id, (ns or "library", model))
    if request.method == "GET":
        return Response(status_code=204, headers=_session_headers(request, ns, model, session))
    if request.method == "DELETE":
        await run_in_threadpool(sessions.close, session, abort=True)
        return Response(status_code=204, headers=API_VERSION)
    if request.method == "PATCH":
        content_range = request.headers.get("content-range")
        if content_range:
            start = content_range.strip().removeprefix("bytes").strip(" =").split("-", 1)[0]
            if not start.isdigit() or int(start) != session.offset:
                return JSONResponse(docker_error(RegistryProblem(
                    "range does not continue the upload", "BLOB_UPLOAD_INVALID", 416))[1], status_code=416,
                    headers={**_session_headers(request, ns, model, session)})
        async with session.lock:
            await _receive(request, reg, session)
        return Response(status_code=202, headers=_session_headers(request, ns, model, session))
    if request.method == "PUT":
        return await _finish(request, reg, who, ns, model, session)
    raise RegistryProblem("the operation is unsupported", "UNSUPPORTED", 405)


async def _finish(request: Request, reg: RegistryServer, who: Caller, ns: str | None, model: str,
                  session: UploadSession) -> Response:
    sessions = reg.sessions
    try:
        digest = Digest.parse(request.query_params.get("digest", ""))
        async with session.lock:
            await _receive(request, reg, session)
            await run_in_threadpool(session.finish, digest)
    except BaseException:
        await run_in_threadpool(sessions.close, session, abort=True)
        raise
    await run_in_threadpool(sessions.close, session, abort=False)
    await run_in_threadpool(reg.ownership.record_upload, who, digest)
    location = _url(request, ns, model, f"blobs/{digest}")
    return Response(status_code=201, headers={**API_VERSION, "Location": location,
                                               "Docker-Content-Digest": str(digest), "Content-Length": "0"})


async def _receive(request: Request, reg: RegistryServer, session: UploadSession) -> None:
    """Stream the request body into the session (hashing as it passes), capped by max_blob_bytes."""
    await receive_body(request, session.write, session.offset, reg.settings.max_blob_bytes)


async def _read_capped(request: Request, cap: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > cap:
            raise RegistryProblem("manifest too large", "SIZE_INVALID", 413)
    return bytes(data)
