"""Request-scoped access to the process's runtime and to who the request acts for (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..composition import NotServedHere, Runtime
from ..services.access.ownership import PUBLIC_READER, Caller
from ..services.inference.cancel import Handle
from ..services.inference.service import Inference


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def caller(request: Request) -> Caller:
    """The request's principal (set by the auth middleware); ``None`` when auth is off."""
    principal: Caller = request.scope.get("state", {}).get("principal")
    return principal


def registry_caller(request: Request) -> Caller:
    """As :func:`caller`, but an anonymous reader of a public registry (``registry_public_read``,
    auth on, no key) reads only unowned and public models."""
    principal = caller(request)
    if principal is None and request.app.state.runtime.settings.auth_enabled:
        return PUBLIC_READER
    return principal


def cancel_handle(request: Request) -> Handle | None:
    """The request's entry in the cancel registry (``DELETE /api/requests/{id}``)."""
    handle: Handle | None = request.scope.get("state", {}).get("cancel")
    return handle


def inference(request: Request) -> Inference:
    service = request.app.state.runtime.inference
    if service is None:
        raise NotServedHere("inference is not served here")
    found: Inference = service
    return found


Rt = Annotated[Runtime, Depends(runtime)]
"""Route parameter type: ``rt: Rt`` gives the handler the process's runtime."""
Who = Annotated[Caller, Depends(caller)]
"""Route parameter type: ``who: Who`` is the caller (``None`` with auth off)."""
RegistryWho = Annotated[Caller, Depends(registry_caller)]
CancelHandle = Annotated[Handle | None, Depends(cancel_handle)]
Inf = Annotated[Inference, Depends(inference)]
