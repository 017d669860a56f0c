"""``POST /api/create``: create a model from blobs, another model, or a Modelfile.

Creates that convert or quantize are slow; where a job queue is wired (the AWS deployment, whose
API function must answer within API Gateway's 29 s), they run in the worker function and the
response follows the job's progress. Sending the same request again follows the same job.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ...option_bounds import OptionLimits
from ...services.create import plan_create, run_create
from ...services.jobs import follow_job, submit_or_attach
from ..deps import Svc
from ..ndjson import in_thread, respond
from ..types import CreateRequest

router = APIRouter()


@router.post("/api/create")
async def create(req: CreateRequest, svc: Svc) -> Response:
    request = req.as_request()
    plan = await in_thread(plan_create, svc.catalog, request, OptionLimits.from_settings(svc.settings))
    queue = svc.extras.get("jobs")
    if queue is not None and (plan.source_files or plan.quantize):
        job_id = await in_thread(submit_or_attach, svc, "create", request, queue)
        return await respond(follow_job(svc.state, job_id, timeout=svc.settings.job_follow_seconds), req.stream)
    return await respond(run_create(svc.catalog, plan, native_quantize=svc.runners().quantize), req.stream)
