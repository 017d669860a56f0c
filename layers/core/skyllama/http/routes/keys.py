"""``/api/keys``: API-key administration over HTTP (skyllama's own routes; ``admin`` scope only).

The same operations as ``skyllama keys create|list|revoke`` (``services/access/keys.py``), for
the web console: the secret of a new key is in the creation answer and nowhere else (only its
sha256 is stored), listings never carry secrets or hashes, and a revoked key is kept for its
usage history. The policy (``http/policy.py``) gives these routes to ``admin`` keys alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..deps import Rt
from ..wire_base import WireBase

router = APIRouter()


class CreateKeyRequest(WireBase):
    name: str = Field(..., min_length=1, max_length=200)
    owner: str = Field(..., min_length=1, max_length=80)
    scopes: list[str] = Field(default_factory=lambda: ["inference"], max_length=3)
    rpm: int | None = Field(None, ge=1, le=1_000_000_000)
    tokens_per_day: int | None = Field(None, ge=1, le=1_000_000_000_000)


@router.get("/api/keys")
async def list_keys(rt: Rt) -> dict[str, Any]:
    return {"keys": await run_in_threadpool(rt.keys.list_keys)}


@router.post("/api/keys", status_code=201)
async def create_key(rt: Rt, body: CreateKeyRequest) -> dict[str, Any]:
    secret, record = await run_in_threadpool(
        lambda: rt.keys.create_key(name=body.name, owner=body.owner, scopes=body.scopes, rpm=body.rpm,
                                   tokens_per_day=body.tokens_per_day))
    return {"key": record, "secret": secret}


@router.delete("/api/keys/{key_id}")
async def revoke_key(rt: Rt, key_id: str = Path(..., max_length=64, pattern=r"^[A-Za-z0-9_-]+$")) -> dict[str, Any]:
    return {"key": await run_in_threadpool(rt.keys.revoke_key, key_id)}
