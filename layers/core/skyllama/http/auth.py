"""API-key authentication and the route policy: which scope each route needs (T-01, T-15).

Enforced by an ASGI middleware around the router, so no route can be left out by forgetting a
dependency. For each request the middleware finds the route the router will pick (the same
``route.matches`` test the router uses, so HEAD vs GET, path parameters and mounts resolve as
they will be served) and looks the route's *template* and the method up in :data:`POLICY`:

- a route in no rule needs ``admin`` (default-deny: a new route fails closed);
- a path no route matches (404, 405, a trailing-slash redirect) needs a valid key of any scope,
  so unauthenticated callers learn nothing about which paths exist;
- ``GET|HEAD /`` and ``/api/version`` are public, as health checks need.

Missing, unknown or revoked keys get 401 ``{"error": "unauthorized"}`` with
``WWW-Authenticate: Bearer``; a key without the scope gets 403 ``{"error": "forbidden"}``. CORS
preflights (OPTIONS) are answered by the CORS middleware outside this one, without a key.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..services.access.keys import ApiKeys, Principal
from ..settings import Settings
from .errors import error_body
from .policy import ANY, AUTHENTICATED, PUBLIC, required_scope

try:
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # older FastAPI
    _iter_route_contexts = None  # type: ignore[assignment]


def flat_routes(app: FastAPI) -> list[Any]:
    """Every route of the app, included routers flattened (FastAPI >= 0.16x keeps included
    routers as nodes of ``app.routes``; each item has ``path``, ``methods`` and ``matches``)."""
    if _iter_route_contexts is None:  # older FastAPI: include_router copies routes into app.routes
        return list(app.router.routes)
    return list(_iter_route_contexts(app.router.routes))


def route_template(route: BaseRoute) -> str:
    return str(getattr(route, "path", "") or "")


def route_methods(route: BaseRoute) -> set[str]:
    """The methods a route answers (a mount: every method)."""
    methods = getattr(route, "methods", None)
    return set(methods) if methods else set(ANY)


def route_policy(app: FastAPI, settings: Settings) -> dict[tuple[str, str], str]:
    """``(template, method) -> scope`` for every route in the app's table (for docs and tests)."""
    table = {}
    for route in flat_routes(app):
        for method in sorted(route_methods(route)):
            table[(route_template(route), method)] = required_scope(
                route_template(route), method, registry_public_read=settings.registry_public_read)
    return table


def bearer_secret(scope: Scope) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (or ``x-api-key``, as Anthropic clients send)."""
    api_key = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").strip().partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return api_key


async def _deny(send: Send, status: int, message: str, path: str) -> None:
    body = json.dumps(error_body(message, status, path)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """Authenticates and authorises every HTTP request before the router sees it.

    Puts ``principal``, ``route`` (the matched template) and ``required_scope`` in
    ``scope["state"]`` for metering and for the routes, which pass the principal on to every
    service that reads or changes a model.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, keys: ApiKeys, settings: Settings) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.keys = keys
        self.settings = settings

    def _resolve(self, scope: Scope) -> tuple[str, str]:
        for route in flat_routes(self.fastapi_app):
            match, _child = route.matches(scope)
            if match == Match.FULL:
                template = route_template(route)
                return template, required_scope(template, scope["method"],
                                                registry_public_read=self.settings.registry_public_read)
        return "", AUTHENTICATED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template, needed = self._resolve(scope)
        state = scope.setdefault("state", {})
        state["route"] = template
        state["required_scope"] = needed
        if not self.settings.auth_enabled:
            await self.app(scope, receive, send)
            return
        principal: Principal | None = None
        if needed != PUBLIC:
            secret = bearer_secret(scope)
            principal = await run_in_threadpool(self.keys.authenticate, secret) if secret else None
            if principal is None:
                await _deny(send, 401, "unauthorized", scope.get("path", ""))
                return
            if needed != AUTHENTICATED and not principal.has(needed):
                await _deny(send, 403, "forbidden", scope.get("path", ""))
                return
        state["principal"] = principal
        await self.app(scope, receive, send)
