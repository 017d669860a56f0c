"""Inference: ``/api/generate``, ``/api/chat``, ``/api/embed``, ``/api/embeddings``, ``/api/ps``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ...composition import Services
from ...errors import Cancelled
from ...services import inference, ownership
from ...services.scheduler import Scheduler
from ..deps import services
from ..inference_types import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from ..ndjson import Event, respond

router = APIRouter()
log = logging.getLogger(__name__)


def scheduler(request: Request, svc: Services = Depends(services)) -> Scheduler:
    """The process's scheduler, made on first use (tests put an ``engine_loader`` in extras)."""
    return scheduler_of(request.app)


def scheduler_of(app: FastAPI) -> Scheduler:
    svc: Services = app.state.services
    sched = svc.extras.get("scheduler")
    if sched is None:
        loader = svc.extras.get("engine_loader")
        engine = svc.extras.get("engine") or (_LoaderEngine(loader) if loader else svc.runners())
        sched = Scheduler(svc.settings, svc.catalog, engine, clock=svc.clock, observer=svc.extras.get("fleet"))
        svc.extras["scheduler"] = sched
        app.state.shutdown_hooks.append(sched.close)
    return sched


class _LoaderEngine:
    """A bare loader function (tests) as an engine without batching."""

    batching = False

    def __init__(self, loader: Any) -> None:
        self.load = loader

    def load_batched(self, spec: Any, n_seq: int) -> Any:
        raise NotImplementedError


def start_preload(app: FastAPI) -> asyncio.Task[None]:
    """Load ``SKYLLAMA_PRELOAD``'s models in the background (startup never waits for it)."""
    task = asyncio.get_running_loop().create_task(_preload(app))
    app.state.preload_task = task
    return task


async def _preload(app: FastAPI) -> None:
    from ...settings import parse_model_map

    svc: Services = app.state.services
    sched = scheduler_of(app)
    for name, keep_alive in parse_model_map(svc.settings.preload).items():
        try:
            prep = await asyncio.to_thread(inference.prepare, svc.catalog, name, None, keep_alive or None, None,
                                           inference.limits_of(sched))
            async with sched.acquire(prep.model, prep.options, prep.keep_alive):
                pass
            log.info("preloaded %s", name)
        except Exception as e:  # noqa: BLE001 - one bad entry must not stop the others
            log.warning("could not preload %s: %s", name, e)


async def _until_disconnect(request: Request, events: AsyncGenerator[Event, None]) -> AsyncIterator[Event]:
    """For ``stream:false``: a client that hangs up cancels its generation (499)."""
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        async for event in events:
            if watcher.done():
                raise Cancelled("request canceled")
            yield event
    finally:
        watcher.cancel()
        await events.aclose()


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _Closing(Response):
    """Closes the event stream however the response ends: a client that hangs up mid-stream
    makes ``send`` fail, which leaves the generator suspended, holding its runner slot."""

    def __init__(self, inner: Response, events: AsyncGenerator[Event, None]) -> None:
        self.inner = inner
        self.events = events
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            await self.events.aclose()


async def _serve(request: Request, events: AsyncGenerator[Event, None], stream: bool | None,
                 merge: Callable[[list[Event]], Event]) -> Response:
    if stream is False:
        return await respond(_until_disconnect(request, events), False, merge)
    return _Closing(await respond(events, stream, merge), events)


@router.post("/api/generate")
async def generate(req: GenerateRequest, request: Request, svc: Services = Depends(services),
                   sched: Scheduler = Depends(scheduler)) -> Response:
    return await _serve(request, inference.generate(svc.catalog, sched, req), req.stream, inference.merge_generate)


@router.post("/api/chat")
async def chat(req: ChatRequest, request: Request, svc: Services = Depends(services),
               sched: Scheduler = Depends(scheduler)) -> Response:
    return await _serve(request, inference.chat(svc.catalog, sched, req), req.stream, inference.merge_chat)


@router.post("/api/embed", response_model=None)
async def embed(req: EmbedRequest, svc: Services = Depends(services),
                sched: Scheduler = Depends(scheduler)) -> JSONResponse:
    # JSONResponse skips FastAPI's jsonable_encoder, which took twice json.dumps's time on 512 vectors.
    return JSONResponse(await inference.embed(svc.catalog, sched, req))


@router.post("/api/embeddings")
async def embeddings(req: EmbeddingsRequest, svc: Services = Depends(services),
                     sched: Scheduler = Depends(scheduler)) -> dict[str, Any]:
    return await inference.embeddings(svc.catalog, sched, req)


@router.get("/api/ps")
async def ps(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """This process's runners; with fleet records on, every instance's (no scheduler needed)."""
    fleet = svc.extras.get("fleet")
    rows = await asyncio.to_thread(fleet.rows) if fleet is not None else scheduler_of(request.app).ps()
    return {"models": ownership.filter_visible(rows)}
