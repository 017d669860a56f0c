"""``GET /metrics`` (Prometheus text format) and the middleware that binds the app's metrics.

The route needs an ``admin`` key when auth is on. Request counts come from
the metering middleware's usage records (see ``services/metrics.py``), so they match
``/api/usage``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from ..services.metrics import Metrics

router = APIRouter()


def metrics_of(app: FastAPI) -> Metrics:
    """The app's :class:`Metrics` (made on first use, kept in ``services.extras``)."""
    extras = app.state.services.extras
    metrics = extras.get("metrics")
    if metrics is None:
        settings = app.state.services.settings
        metrics = extras["metrics"] = Metrics(lambda: extras.get("scheduler"), emf=settings.emf_enabled)
    return metrics


class MetricsMiddleware:
    """Puts the app's metrics in ``scope["state"]["metrics"]`` and the request's context."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = metrics_of(self.fastapi_app)
        scope.setdefault("state", {})["metrics"] = metrics
        token = metrics.bind()
        try:
            await self.app(scope, receive, send)
        finally:
            metrics.unbind(token)


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    return Response(metrics_of(request.app).render(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(MetricsMiddleware, fastapi_app=app)
