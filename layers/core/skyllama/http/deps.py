"""Request-scoped access to the process's services (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..composition import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]
"""Route parameter type: ``svc: Svc`` gives the handler the process's services."""
