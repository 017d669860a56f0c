"""Model management: ``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from ...composition import Services
from ..deps import services
from ..ndjson import in_thread
from ..types import CopyRequest, DeleteRequest, ShowRequest

router = APIRouter()


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"models": await in_thread(svc.catalog.list_models)}


@router.post("/api/show")
async def show(req: ShowRequest, svc: Services = Depends(services)) -> dict[str, Any]:
    result: dict[str, Any] = await in_thread(svc.catalog.show, req.model_name(), req.verbose)
    return result


@router.post("/api/copy")
async def copy(req: CopyRequest, svc: Services = Depends(services)) -> Response:
    await in_thread(svc.catalog.copy, req.source, req.destination)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(req: DeleteRequest, svc: Services = Depends(services)) -> Response:
    await in_thread(svc.catalog.delete, req.model_name())
    return Response(status_code=200)
