"""Request-scoped access to the process's services (no globals)."""

from __future__ import annotations

from fastapi import Request

from ..composition import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
