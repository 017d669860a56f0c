"""``create_app``: the FastAPI application over one runtime (``composition.build_runtime``).

The app holds the runtime in ``app.state.runtime``; routes reach it through ``deps.py`` and each
middleware receives the part it uses. Middlewares, from the outermost: the Host check (DNS
rebinding), CORS and the Origin check (CSRF), request ids and the cancel registry, auth,
metering (usage, quotas, per-key concurrency), body limits; then the routers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from .. import __version__
from ..composition import Runtime, build_runtime
from ..services.models.sweep import start_sweeper
from ..settings import Settings, parse_model_map
from .anthropic import routes as anthropic
from .auth import AuthMiddleware
from .content_type import JsonCharsetMiddleware
from .errors import install_error_handlers
from .limits import install_body_limits
from .metering import MeteringMiddleware
from .metering import router as usage
from .metrics import router as metrics
from .openai import routes as openai
from .openapi import install_openapi
from .origins import install_cors, install_host_check
from .request_ids import RequestIdMiddleware
from .routes import blobs, cancel, inference, keys, models, root
from .ui import router as console

ROUTERS = (root.router, models.router, blobs.router, inference.router, openai.router, anthropic.router,
           cancel.router, usage, metrics, keys.router, console)


def _control_routers() -> tuple[APIRouter, ...]:
    """``/api/create``, ``/api/pull``, ``/api/push`` and ``/v2/``: imported only by a runtime with a
    control plane (Lambda's inference function has none, and skips importing them at cold start)."""
    from .routes import create, registry

    return create.router, registry.router


def create_app(runtime: Runtime | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Build the app over ``runtime`` (or one built from ``settings``, else the environment)."""
    owned = runtime is None  # an app that built its runtime closes it (its runner processes) at shutdown
    rt = runtime or build_runtime(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        control = rt.control

        def downloading() -> set[str]:
            return set(control.transfers.downloads.downloads) if control is not None else set()

        stop_sweeper = start_sweeper(rt.stores, downloading, rt.settings)  # crash leftovers (T-37)
        preload = None
        if rt.inference is not None and rt.settings.preload:  # in the background: startup never waits
            preload = asyncio.get_running_loop().create_task(rt.inference.preload(parse_model_map(rt.settings.preload)))
        app.state.preload_task = preload
        yield
        if preload is not None:
            preload.cancel()
        await stop_sweeper()
        if owned:
            await rt.aclose()
        elif rt.scheduler is not None:
            await rt.scheduler.close()

    app = FastAPI(title="skyllama", version=__version__, lifespan=lifespan,
                  description="An Ollama-compatible model server.", docs_url="/docs", redoc_url=None)
    app.state.runtime = rt
    install_error_handlers(app)
    for router in ROUTERS + (_control_routers() if rt.control is not None else ()):
        app.include_router(router)
    install_openapi(app)
    install_body_limits(app, rt.settings)  # size, type and time limits on request bodies
    app.add_middleware(MeteringMiddleware, meter=rt.meter, concurrency=rt.concurrency, metrics=rt.metrics,
                       settings=rt.settings)
    app.add_middleware(AuthMiddleware, fastapi_app=app, keys=rt.keys, settings=rt.settings)
    app.add_middleware(RequestIdMiddleware, cancels=rt.cancels)  # X-Request-Id, even for refused requests
    install_cors(app, rt.settings)
    install_host_check(app, rt.settings)  # outermost: refuse rebinding hosts before anything else
    app.add_middleware(JsonCharsetMiddleware)  # gin's JSON content type, on every answer (the checks' too)
    return app
