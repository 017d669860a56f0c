"""Model management: ``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..deps import Rt, Who
from ..ndjson import in_thread
from ..types import CopyRequest, DeleteRequest, ShowRequest

router = APIRouter()


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(rt: Rt, who: Who) -> dict[str, Any]:
    return {"models": await in_thread(rt.catalog.list_models, who)}


@router.post("/api/show")
async def show(req: ShowRequest, rt: Rt, who: Who) -> dict[str, Any]:
    result: dict[str, Any] = await in_thread(rt.catalog.show, req.model_name(), who, req.verbose, req.system,
                                             req.options)
    return result


@router.post("/api/copy")
async def copy(req: CopyRequest, rt: Rt, who: Who) -> Response:
    await in_thread(rt.catalog.copy, req.source, req.destination, who)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(req: DeleteRequest, rt: Rt, who: Who) -> Response:
    await in_thread(rt.catalog.delete, req.model_name(), who)
    return Response(status_code=200)
