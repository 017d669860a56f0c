"""``create_app``: the FastAPI application, wired from settings (the composition root's HTTP face)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..composition import Services, build_services
from ..services.sweep import start_sweeper
from ..settings import Settings
from .auth import install_auth
from .errors import install_error_handlers
from .limits import install_body_limits
from .metrics import install_metrics
from .openapi import install_openapi
from .origins import install_cors, install_host_check
from .request_ids import install_request_ids
from .routes import anthropic, blobs, cancel, create, inference, models, openai, registry, root


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app. Tests pass ``services`` with their own stores; Lambda builds it once."""
    settings = settings or (services.settings if services else Settings.from_env())
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.shutdown_hooks.append(start_sweeper(services))  # crash leftovers, now and periodically (T-37)
        if settings.preload:
            from .routes.inference import start_preload

            start_preload(app)
        yield
        for hook in app.state.shutdown_hooks:
            await hook()

    app = FastAPI(title="skyllama", version=__version__, lifespan=lifespan,
                  description="An Ollama-compatible model server.", docs_url="/docs", redoc_url=None)
    app.state.services = services
    app.state.shutdown_hooks = []
    install_error_handlers(app)
    for module in (root, models, blobs, create, inference, openai, anthropic, cancel, registry):
        app.include_router(module.router)
    install_openapi(app)
    install_body_limits(app, settings)  # size, type and time limits on request bodies
    install_auth(app, settings)  # keys, scopes and metering: before bodies are read, after CORS
    install_metrics(app)  # outside metering, which reports each request to it
    install_request_ids(app)  # X-Request-Id and the cancel registry, even for refused requests
    install_cors(app, settings)
    install_host_check(app, settings)  # outermost: refuse rebinding hosts before anything else
    return app
