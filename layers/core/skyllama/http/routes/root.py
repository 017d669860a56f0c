"""``/`` and ``/api/version``: liveness, as Ollama answers them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ..deps import Rt
from ..types import VersionResponse

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], response_class=PlainTextResponse)
async def health() -> str:
    return "Ollama is running"


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version(rt: Rt) -> VersionResponse:
    """The Ollama version skyllama answers as (``SKYLLAMA_API_VERSION``): clients gate features on it."""
    return VersionResponse(version=rt.settings.api_version)
