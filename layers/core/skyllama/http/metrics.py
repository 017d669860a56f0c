"""``GET /metrics`` (Prometheus text format).

The route needs an ``admin`` key when auth is on. Request counts come from the metering
middleware's usage records (see ``services/metrics.py``), so they match ``/api/usage``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from .deps import Rt

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus(rt: Rt) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
