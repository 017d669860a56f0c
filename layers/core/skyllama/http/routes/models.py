"""Model management: ``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..deps import Svc
from ..ndjson import in_thread
from ..types import CopyRequest, DeleteRequest, ShowRequest

router = APIRouter()


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(svc: Svc) -> dict[str, Any]:
    return {"models": await in_thread(svc.catalog.list_models)}


@router.post("/api/show")
async def show(req: ShowRequest, svc: Svc) -> dict[str, Any]:
    result: dict[str, Any] = await in_thread(svc.catalog.show, req.model_name(), req.verbose)
    return result


@router.post("/api/copy")
async def copy(req: CopyRequest, svc: Svc) -> Response:
    await in_thread(svc.catalog.copy, req.source, req.destination)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(req: DeleteRequest, svc: Svc) -> Response:
    await in_thread(svc.catalog.delete, req.model_name())
    return Response(status_code=200)
