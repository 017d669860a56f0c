"""``POST /api/create``: create a model from blobs, another model, or a Modelfile."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ...services.create import plan_create, run_create
from ..deps import Svc
from ..ndjson import in_thread, respond
from ..types import CreateRequest

router = APIRouter()


@router.post("/api/create")
async def create(req: CreateRequest, svc: Svc) -> Response:
    plan = await in_thread(plan_create, svc.catalog, req.as_request())
    return await respond(run_create(svc.catalog, plan), req.stream)
