"""Metering middleware (quotas before, usage after each request) and ``GET /api/usage``.

Token counts are read from what the client received: the last NDJSON line or the JSON body
(``prompt_eval_count``, ``eval_count``; ``embeddings`` for inputs), or the ``usage`` object of
the OpenAI-compatible routes (JSON body or the last SSE ``data:`` event carrying it). The
record is written once the response body has been fully sent, streamed ones included.

With auth off, requests are recorded under the key ``anonymous`` (owner ``local``); public
routes (``/``, ``/api/version``) are never recorded. A key with ``SKYLLAMA_MAX_CONCURRENT_PER_KEY``
requests in flight (in this process) gets 429 with ``Retry-After`` for the next one.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Forbidden, TooManyRequests
from ..services.access.keys import Principal
from ..services.access.limits import KeyConcurrency
from ..services.access.metering import Meter, UsageRecord
from ..services.metrics import Metrics
from ..settings import Settings
from .deps import Rt
from .errors import error_response
from .policy import PUBLIC

log = logging.getLogger(__name__)

ANONYMOUS = Principal(owner="local", key_id="anonymous", scopes=frozenset({"admin"}))
MAX_CAPTURE = 4 << 20
TAIL = 64 << 10
MAX_REQUEST_CAPTURE = 1 << 20
_MODEL = re.compile(rb'"(?:model|name)"\s*:\s*"([^"\\]{1,300})"')


class _Capture:
    """The response as the client got it: status, content type and (the end of) the body."""

    def __init__(self) -> None:
        self.status = 0
        self.content_type = ""
        self.body = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.body += chunk
        if len(self.body) > MAX_CAPTURE:
            del self.body[: len(self.body) - TAIL]
            self.truncated = True
        elif self.truncated and len(self.body) > 2 * TAIL:
            del self.body[: len(self.body) - TAIL]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def counts(content_type: str, body: bytes, truncated: bool = False) -> tuple[int, int, int]:
    """``(prompt_tokens, completion_tokens, embedding_inputs)`` from a response body."""
    if "ndjson" in content_type:
        for raw in reversed(body.strip().splitlines()):
            try:
                last = json.loads(raw)
            except ValueError:
                continue
            if isinstance(last, dict):
                return _int(last.get("prompt_eval_count")), _int(last.get("eval_count")), 0
        return 0, 0, 0
    if "event-stream" in content_type:
        for raw in reversed(body.splitlines()):
            if raw.startswith(b"data:"):
                try:
                    event = json.loads(raw[5:].strip())
                except ValueError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                    usage = event["usage"]
                    return _int(usage.get("prompt_tokens") or usage.get("input_tokens")), \
                        _int(usage.get("completion_tokens") or usage.get("output_tokens")), 0
        return 0, 0, 0
    if truncated:
        return _regex_counts(bytes(body))
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return 0, 0, 0
    if not isinstance(doc, dict):
        return 0, 0, 0
    inputs = 0
    if isinstance(doc.get("embeddings"), list):
        inputs = len(doc["embeddings"])
    elif isinstance(doc.get("embedding"), list) and doc["embedding"]:
        inputs = 1
    elif doc.get("object") == "list" and isinstance(doc.get("data"), list):
        inputs = sum(1 for d in doc["data"] if isinstance(d, dict) and d.get("object") == "embedding")
    if isinstance(doc.get("usage"), dict):
        usage = doc["usage"]
        return _int(usage.get("prompt_tokens") or usage.get("input_tokens")), \
            _int(usage.get("completion_tokens") or usage.get("output_tokens")), inputs
    return _int(doc.get("prompt_eval_count")), _int(doc.get("eval_count")), inputs


def _regex_counts(tail: bytes) -> tuple[int, int, int]:
    """Counts from the tail of a body too large to keep whole (a big embedding batch)."""
    found = {}
    for name in (b"prompt_eval_count", b"eval_count", b"prompt_tokens", b"completion_tokens"):
        match = re.findall(rb'(?<![\\\w])"' + name + rb'"\s*:\s*(\d+)', tail)
        if match:
            found[name] = int(match[-1])
    prompt = found.get(b"prompt_eval_count", found.get(b"prompt_tokens", 0))
    return prompt, found.get(b"eval_count", found.get(b"completion_tokens", 0)), 0


def request_model(body: bytes) -> str:
    """The ``model`` (or ``name``, or copy's ``source``) named by a JSON request body."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for field in ("model", "name", "source"):
            if isinstance(doc.get(field), str) and doc[field]:
                return str(doc[field])
        return ""
    match = _MODEL.search(body[:MAX_REQUEST_CAPTURE])
    return match.group(1).decode("utf-8", errors="replace") if match else ""


class MeteringMiddleware:
    """Checks quotas before a request and records its usage after the last byte is sent."""

    def __init__(self, app: ASGIApp, meter: Meter, concurrency: KeyConcurrency, metrics: Metrics,
                 settings: Settings) -> None:
        self.app = app
        self.meter = meter
        self.concurrency = concurrency
        self.metrics = metrics
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        if scope["type"] != "http" or state.get("required_scope") == PUBLIC:
            await self.app(scope, receive, send)
            return
        principal: Principal | None = state.get("principal")
        if principal is None:
            if self.settings.auth_enabled:  # cannot happen past AuthMiddleware; fail closed
                await self.app(scope, receive, send)
                return
            principal = ANONYMOUS
        if principal.quotas:
            try:
                await run_in_threadpool(self.meter.check_quota, principal)
            except TooManyRequests as exc:
                await error_response(exc, scope.get("path", ""))(scope, receive, send)
                return
        key = principal.key_id if principal is not ANONYMOUS else None
        if key is not None and not self.concurrency.enter(key):
            limit = self.concurrency.limit
            busy = TooManyRequests(f"too many concurrent requests for this key (limit {limit})")
            await error_response(busy, scope.get("path", ""))(scope, receive, send)
            return
        try:
            await self._metered(scope, receive, send, principal)
        finally:
            if key is not None:
                self.concurrency.leave(key)

    async def _metered(self, scope: Scope, receive: Receive, send: Send, principal: Principal) -> None:
        started = time.perf_counter_ns()
        capture = _Capture()
        request_body = bytearray()
        metered_body = not str(scope.get("path", "")).startswith(("/api/blobs/", "/v2/"))

        async def receive_wrapper() -> Message:
            message = await receive()
            if metered_body and message["type"] == "http.request" and len(request_body) < MAX_REQUEST_CAPTURE:
                request_body.extend(message.get("body", b"")[: MAX_REQUEST_CAPTURE - len(request_body)])
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        capture.content_type = value.decode("latin-1").lower()
            elif message["type"] == "http.response.body":
                capture.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            duration = time.perf_counter_ns() - started
            await self._record(principal, scope, capture, bytes(request_body), duration)

    async def _record(self, principal: Principal, scope: Scope, capture: _Capture,
                      request_body: bytes, duration: int) -> None:
        try:
            prompt, completion, inputs = counts(capture.content_type, bytes(capture.body), capture.truncated)
            reported = (scope.get("state") or {}).get("tokens")  # set by routes whose body may omit them
            if reported is not None:
                prompt, completion = reported
            usage = UsageRecord(owner=principal.owner, key_id=principal.key_id, model=request_model(request_body),
                                route=(scope.get("state") or {}).get("route") or "-", method=scope["method"],
                                status=capture.status or 499, duration_ns=duration, prompt_tokens=prompt,
                                completion_tokens=completion, embedding_inputs=inputs)
            self.metrics.observe_usage(usage)
            await run_in_threadpool(self.meter.record, usage)
        except Exception:  # noqa: BLE001 - the response is gone; never fail it for bookkeeping
            log.exception("could not record usage")


router = APIRouter()


@router.get("/api/usage")
async def usage(request: Request, rt: Rt, days: int = Query(7, ge=1, le=90),
                key: str | None = Query(None, max_length=100)) -> dict[str, Any]:
    """Usage of one API key by UTC day and model (skyllama's own route).

    ``key`` defaults to the caller's key; only ``admin`` keys may name another key. ``quotas``
    (the key's rpm and tokens_per_day) and ``tokens_today`` (what the daily quota counts) tell how
    close the key is to a 429.
    """
    principal: Principal = request.scope.get("state", {}).get("principal") or ANONYMOUS
    key_id = key or principal.key_id
    owner, quotas = principal.owner, dict(principal.quotas)
    if key_id != principal.key_id:
        if not principal.is_admin:
            raise Forbidden("forbidden")
        record = await run_in_threadpool(rt.keys.get_key, key_id)
        owner, quotas = (record["owner"], dict(record.get("quotas") or {})) if record else ("", {})
    summary = await run_in_threadpool(rt.meter.summary, key_id, days)
    today = await run_in_threadpool(rt.meter.tokens_today, key_id)
    return {"key": key_id, "owner": owner, "days": summary, "quotas": quotas, "tokens_today": today}
