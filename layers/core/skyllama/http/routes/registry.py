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

from ...composition import Services
from ...digests import Digest
from ...errors import SkyllamaError
from ...manifest import MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES
from ...names import ModelName
from ...services import pull, push
from ...services import registry_server as reg
from ...services.jobs import follow_job, submit_or_attach
from ..deps import Svc
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
async def api_pull(req: TransferRequest, svc: Svc) -> Response:
    name, client = await pull.prepare(svc, req.model_name(), req.insecure)
    if svc.extras.get("jobs") is not None:
        await client.__aexit__(None, None, None)
        return await _as_job(svc, "pull", name, req)
    return await respond(pull.pull_model(svc, name, client), req.stream)


@router.post("/api/push")
async def api_push(req: TransferRequest, svc: Svc) -> Response:
    name, data, client = await push.prepare(svc, req.model_name(), req.insecure)
    if svc.extras.get("jobs") is not None:
        await client.__aexit__(None, None, None)
        return await _as_job(svc, "push", name, req)
    return await respond(push.push_model(svc, name, data, client), req.stream)


async def _as_job(svc: Services, job_type: str, name: ModelName, req: TransferRequest) -> Response:
    """AWS: the worker runs the transfer (past API Gateway's 29 s and Lambda's 15 minutes); the
    response follows the job, and the same request sent again follows it on to ``success``."""
    request = {"model": str(name), "insecure": req.insecure}
    job_id = await run_in_threadpool(submit_or_attach, svc, job_type, request, svc.extras["jobs"], rerun_success=True)
    follow = follow_job(svc.state, job_id, timeout=svc.settings.job_follow_seconds, announce=False)
    return await respond(follow, req.stream)


def require_registry_write(request: Request) -> None:
    """Hook for registry writes. Keys and scopes are enforced by the auth middleware's route
    policy (``/v2*`` writes need ``manage``) and names by :mod:`ownership`; anything extra goes here."""


def _error(exc: SkyllamaError, head: bool) -> Response:
    status, body = reg.docker_error(exc)
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
    raise reg.RegistryProblem("repository name not known to registry", "NAME_UNKNOWN", 404)


@router.api_route("/v2/", methods=["GET", "HEAD"])
@router.api_route("/v2", methods=["GET", "HEAD"])
async def v2_base() -> Response:
    return JSONResponse({}, headers=API_VERSION)


@router.api_route("/v2/{rest:path}", methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"])
async def v2(rest: str, request: Request, svc: Svc) -> Response:
    head = request.method == "HEAD"
    try:
        namespace, model, tail = _split(rest)
        ModelName.parse(f"{namespace or 'library'}/{model}")
        if request.method not in ("GET", "HEAD"):
            require_registry_write(request)
        return await _dispatch(request, svc, namespace, model, tail)
    except SkyllamaError as exc:
        return _error(exc, head)


async def _dispatch(request: Request, svc: Svc, ns: str | None, model: str, tail: list[str]) -> Response:
    method, kind = request.method, tail[0]
    if kind == "manifests" and len(tail) == 2:
        if method in ("GET", "HEAD"):
            return await _get_manifest(svc, ns, model, tail[1], method == "HEAD")
        if method == "PUT":
            return await _put_manifest(request, svc, ns, model, tail[1])
    elif kind == "tags" and tail == ["tags", "list"] and method == "GET":
        return await _tags(svc, ns, model)
    elif kind == "blobs" and len(tail) == 2 and tail[1] != "uploads" and method in ("GET", "HEAD"):
        return await _get_blob(request, svc, Digest.parse(tail[1]), method == "HEAD")
    elif kind == "blobs" and tail[1] == "uploads" and len(tail) <= 3 and (len(tail) == 2 or not tail[2]):
        if method == "POST":
            return await _start_upload(request, svc, ns, model)
    elif kind == "blobs" and tail[1] == "uploads" and len(tail) == 3:
        return await _upload(request, svc, ns, model, tail[2])
    raise reg.RegistryProblem("the operation is unsupported", "UNSUPPORTED", 405)


async def _get_manifest(svc: Svc, ns: str | None, model: str, ref: str, head: bool) -> Response:
    stored = await run_in_threadpool(reg.find_manifest, svc, ns, model, ref)
    headers = {**API_VERSION, "Docker-Content-Digest": str(Digest.of_bytes(stored.data)),
               "Content-Type": MANIFEST_MEDIA_TYPE, "Content-Length": str(len(stored.data))}
    return Response(b"" if head else stored.data, headers=headers)


async def _put_manifest(request: Request, svc: Svc, ns: str | None, model: str, tag: str) -> Response:
    data = await _read_capped(request, MAX_MANIFEST_BYTES)
    digest = await run_in_threadpool(reg.put_manifest, svc, ns, model, tag, data)
    location = _url(request, ns, model, f"manifests/{digest}")
    return Response(status_code=201, headers={**API_VERSION, "Location": location, "Docker-Content-Digest": str(digest)})


async def _tags(svc: Svc, ns: str | None, model: str) -> Response:
    repo = reg.local_name(svc, ns, model, "latest")

    def listing() -> list[str]:
        return sorted(s.name.tag for s in svc.manifests.list()
                      if s.name.key[:3] == repo.key[:3] and reg._anonymous_can_read(svc, s.name))

    tags = await run_in_threadpool(listing)
    if not tags:
        raise reg.RegistryProblem("repository name not known to registry", "NAME_UNKNOWN", 404)
    return JSONResponse({"name": f"{repo.namespace}/{repo.model}", "tags": tags}, headers=API_VERSION)


async def _get_blob(request: Request, svc: Svc, digest: Digest, head: bool) -> Response:
    size = await run_in_threadpool(reg.blob_readable, svc, digest)
    if size is None:
        raise reg.RegistryProblem("blob unknown to registry", "BLOB_UNKNOWN", 404)
    headers = {**API_VERSION, "Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes",
               "ETag": f'"{digest}"', "Content-Type": "application/octet-stream"}
    try:
        span = reg.parse_range(request.headers.get("range"), size)
    except reg.RegistryProblem as e:
        status, body = reg.docker_error(e)
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
    stream = await run_in_threadpool(svc.blobs.open, digest, start)

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


def _session_headers(request: Request, ns: str | None, model: str, session: reg.UploadSession) -> dict[str, str]:
    location = _url(request, ns, model, f"blobs/uploads/{session.id}")
    return {**API_VERSION, "Location": location, "Docker-Upload-UUID": session.id,
            "Range": f"0-{max(session.offset - 1, 0)}", "Content-Length": "0"}


async def _start_upload(request: Request, svc: Svc, ns: str | None, model: str) -> Response:
    query = request.query_params
    if query.get("mount"):
        digest = Digest.parse(query["mount"])
        if await run_in_threadpool(reg.blob_readable, svc, digest) is not None:
            location = _url(request, ns, model, f"blobs/{digest}")
            return Response(status_code=201, headers={**API_VERSION, "Location": location,
                                                       "Docker-Content-Digest": str(digest)})
    sessions = reg.sessions_of(svc)
    session = await run_in_threadpool(sessions.open, (ns or "library", model))
    if query.get("digest"):
        return await _finish(request, svc, ns, model, session)
    return Response(status_code=202, headers=_session_headers(request, ns, model, session))


async def _upload(request: Request, svc: Svc, ns: str | None, model: str, upload_id: str) -> Response:
    sessions = reg.sessions_of(svc)
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
                return JSONResponse(reg.docker_error(reg.RegistryProblem(
                    "range does not continue the upload", "BLOB_UPLOAD_INVALID", 416))[1], status_code=416,
                    headers={**_session_headers(request, ns, model, session)})
        async with session.lock:
            await _receive(request, svc, session)
        return Response(status_code=202, headers=_session_headers(request, ns, model, session))
    if request.method == "PUT":
        return await _finish(request, svc, ns, model, session)
    raise reg.RegistryProblem("the operation is unsupported", "UNSUPPORTED", 405)


async def _finish(request: Request, svc: Svc, ns: str | None, model: str, session: reg.UploadSession) -> Response:
    sessions = reg.sessions_of(svc)
    try:
        digest = Digest.parse(request.query_params.get("digest", ""))
        async with session.lock:
            await _receive(request, svc, session)
            await run_in_threadpool(session.finish, digest)
    except BaseException:
        await run_in_threadpool(sessions.close, session, abort=True)
        raise
    await run_in_threadpool(sessions.close, session, abort=False)
    from ...services import ownership

    await run_in_threadpool(ownership.record_upload, digest)
    location = _url(request, ns, model, f"blobs/{digest}")
    return Response(status_code=201, headers={**API_VERSION, "Location": location,
                                               "Docker-Content-Digest": str(digest), "Content-Length": "0"})


async def _receive(request: Request, svc: Svc, session: reg.UploadSession) -> None:
    """Stream the request body into the session (hashing as it passes), capped by max_blob_bytes."""
    await receive_body(request, session.write, session.offset, svc.settings.max_blob_bytes)


async def _read_capped(request: Request, cap: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > cap:
            raise reg.RegistryProblem("manifest too large", "SIZE_INVALID", 413)
    return bytes(data)
