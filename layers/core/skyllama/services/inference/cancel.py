"""In-flight requests by id, so that one can be cancelled explicitly (skyllama's own API).

Ollama has no cancel API: a client that hangs up is the only way to stop a generation there
(ollama/ollama#2876, ollama-python#287). Here every HTTP request gets an id
(``X-Request-Id``, see ``http/request_ids.py``) and a :class:`Handle` registered for the length
of the request, handed to the service in the request's command. A generation running for the
request adds its engine cancel flag to the handle (:meth:`Handle.watch`); ``DELETE
/api/requests/{id}`` sets those flags. The engine stops before its next
token and the stream ends cleanly with a final chunk whose ``done_reason`` is ``"cancel"``
(``Handle.cancelled``), its metrics included; a ``stream:false`` request gets that final object.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ...errors import Forbidden, NotFound


@dataclass(eq=False)
class Handle:
    """One in-flight request: its id, its ASGI ``state`` (who made it) and its cancel flags."""

    id: str
    state: dict[str, Any]
    events: list[threading.Event] = field(default_factory=list)
    cancelled: bool = False

    @property
    def principal(self) -> Any:
        return self.state.get("principal")

    def cancel(self) -> None:
        self.cancelled = True
        for event in list(self.events):
            event.set()

    def watch(self, event: threading.Event) -> None:
        """Let an explicit cancel of this request set ``event`` (an engine's cancel flag)."""
        self.events.append(event)
        if self.cancelled:
            event.set()


class RequestNotFound(NotFound):
    """404 for an unknown (or finished) request id."""


class CancelRegistry:
    """The process's in-flight requests (several may share an id a client chose)."""

    def __init__(self) -> None:
        self._by_id: dict[str, list[Handle]] = {}
        self._lock = threading.Lock()

    def open(self, request_id: str, state: dict[str, Any]) -> Handle:
        """Register a request; its handle travels with the request (``scope["state"]``) into the
        command the service runs."""
        handle = Handle(request_id, state)
        with self._lock:
            self._by_id.setdefault(request_id, []).append(handle)
        return handle

    def close(self, handle: Handle) -> None:
        with self._lock:
            handles = self._by_id.get(handle.id, [])
            if handle in handles:
                handles.remove(handle)
            if not handles:
                self._by_id.pop(handle.id, None)

    def in_flight(self) -> list[str]:
        with self._lock:
            return sorted(self._by_id)

    def cancel(self, request_id: str, principal: Any = None, *, auth_enabled: bool = False) -> int:
        """Cancel the requests with ``request_id``; with auth on, only the caller's own (or any,
        for an admin key). Returns how many were cancelled; 404 when none is in flight, 403 when
        they belong to someone else."""
        with self._lock:
            handles = list(self._by_id.get(request_id, []))
        if not handles:
            raise RequestNotFound(f'request "{request_id}" not found')
        if auth_enabled and not (principal is not None and principal.is_admin):
            mine = [h for h in handles if h.principal is not None and principal is not None
                    and h.principal.owner == principal.owner]
            if not mine:
                raise Forbidden("forbidden")
            handles = mine
        for handle in handles:
            handle.cancel()
        return len(handles)
