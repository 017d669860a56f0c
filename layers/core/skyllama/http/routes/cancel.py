"""``DELETE /api/requests/{request_id}``: stop an in-flight request (skyllama's own route).

With auth on, a key may cancel only its owner's requests (an ``admin`` key any). The cancelled
generation ends its stream with ``done: true, done_reason: "cancel"``. ``GET /api/requests``
lists the ids in flight (admin only, by the auth policy's default).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request

from ..deps import Svc
from ..request_ids import registry_of

router = APIRouter()


@router.delete("/api/requests/{request_id}")
async def cancel_request(request: Request, svc: Svc,
                         request_id: str = Path(..., max_length=128, pattern=r"^[A-Za-z0-9._-]+$")) -> dict[str, Any]:
    principal = request.scope.get("state", {}).get("principal")
    count = registry_of(request.app).cancel(request_id, principal, auth_enabled=svc.settings.auth_enabled)
    return {"status": "cancelled", "id": request_id, "cancelled": count}


@router.get("/api/requests")
async def list_requests(request: Request) -> dict[str, Any]:
    own = request.scope.get("state", {}).get("request_id")
    return {"requests": [r for r in registry_of(request.app).in_flight() if r != own]}
