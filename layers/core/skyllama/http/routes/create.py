"""``POST /api/create``: create a model from blobs, another model, or a Modelfile.

Creates that convert or quantize are slow; where a job queue is wired (the AWS deployment, whose
API function must answer within API Gateway's 29 s), they run in the worker function and the
response follows the job's progress. Sending the same request again follows the same job.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ...services.jobs.runner import follow_job, submit_or_attach
from ..deps import Rt, Who
from ..ndjson import in_thread, respond
from ..types import CreateRequest

router = APIRouter()


@router.post("/api/create")
async def create(req: CreateRequest, rt: Rt, who: Who) -> Response:
    request = req.as_request()
    plan = await in_thread(rt.creator.plan, request, who)
    queue = rt.stores.jobs
    if queue is not None and (plan.source_files or plan.quantize):
        job_id = await in_thread(submit_or_attach, rt.jobs, "create", request, queue, who)
        return await respond(follow_job(rt.state, job_id, timeout=rt.settings.job_follow_seconds), req.stream)
    return await respond(rt.creator.run(plan), req.stream)
