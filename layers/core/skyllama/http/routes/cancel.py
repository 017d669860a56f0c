"""``DELETE /api/requests/{request_id}``: stop an in-flight request (skyllama's own route).

With auth on, a key may cancel only its owner's requests (an ``admin`` key any). The cancelled
generation ends its stream with ``done: true, done_reason: "cancel"``. ``GET /api/requests``
lists the ids in flight (admin only, by the auth policy's default).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request

from ..deps import Rt, Who

router = APIRouter()


@router.delete("/api/requests/{request_id}")
async def cancel_request(rt: Rt, who: Who,
                         request_id: str = Path(..., max_length=128, pattern=r"^[A-Za-z0-9._-]+$")) -> dict[str, Any]:
    count = rt.cancels.cancel(request_id, who, auth_enabled=rt.settings.auth_enabled)
    return {"status": "cancelled", "id": request_id, "cancelled": count}


@router.get("/api/requests")
async def list_requests(request: Request, rt: Rt) -> dict[str, Any]:
    own = request.scope.get("state", {}).get("request_id")
    return {"requests": [r for r in rt.cancels.in_flight() if r != own]}
