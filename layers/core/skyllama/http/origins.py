"""Browser-facing defences, as Ollama has them: CORS origins, the Origin check and the Host check.

- CORS: the origins Ollama always allows (localhost, 127.0.0.1 and 0.0.0.0 on any port, and the
  app/file/tauri/vscode schemes) plus OLLAMA_ORIGINS. Credentials are never allowed, so a ``*``
  never combines with cookies, and an origin is echoed back only when it matched the list. The
  headers are gin-contrib/cors's (v1.7.2, Ollama's): a preflight (any ``OPTIONS`` from an allowed
  page) is a bodiless 204 with the methods, the headers and a 12-hour ``Access-Control-Max-Age``.
- Origin (T-34, CSRF): a request whose ``Origin`` header is present and not allowed is refused with
  403 on every method before anything else runs, as Ollama's gin-contrib/cors does. CORS alone only
  hides answers from a page; it does not stop a "simple" request (a form or ``text/plain`` POST,
  which needs no preflight) from being executed. Requests without ``Origin`` (curl, SDKs) pass, and
  so does a same-origin one (``Origin`` naming this server's own Host, as gin does). ``Origin: null``
  (sandboxed iframes, some ``file:`` pages, redirects) names no page at all, so it is refused unless
  OLLAMA_ORIGINS lists ``null`` or ``*``.
- Host: when the server listens on loopback, a request whose Host header names anything but a
  loopback or local name is refused with 403. This stops DNS-rebinding pages from reaching a
  laptop's server through a name they control.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings

DEFAULT_ORIGIN_PATTERNS = [
    r"https?://localhost(:\d+)?",
    r"https?://127\.0\.0\.1(:\d+)?",
    r"https?://0\.0\.0\.0(:\d+)?",
    r"https?://\[::1\](:\d+)?",
    r"app://.*",
    r"file://.*",
    r"tauri://.*",
    r"vscode-webview://.*",
    r"vscode-file://.*",
]

# Ollama's AllowHeaders in its order, then skyllama's own (the request id, Anthropic's SDK headers)
ALLOWED_HEADERS = ["Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With",
                   "OpenAI-Beta", "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
                   "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
                   "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count",
                   "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
                   "X-Request-Id", "anthropic-version", "x-api-key"]
ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]  # gin-contrib/cors's default
MAX_AGE = 12 * 3600  # gin-contrib/cors's default: browsers keep a preflight's answer 12 hours


def canonical_header(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey``: ``x-stainless-os`` -> ``X-Stainless-Os``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def origin_regex(extra: str) -> tuple[str, bool]:
    """A regex matching every allowed origin; the flag is True when OLLAMA_ORIGINS contains ``*``."""
    patterns = list(DEFAULT_ORIGIN_PATTERNS)
    wildcard = False
    for item in (part.strip() for part in extra.split(",")):
        if not item:
            continue
        if item == "*":
            wildcard = True
            continue
        # OLLAMA_ORIGINS entries may use * as a wildcard inside (e.g. https://*.example.com)
        patterns.append(".*".join(re.escape(piece) for piece in item.split("*")))
    return "(" + "|".join(patterns) + ")", wildcard


class OriginCheckMiddleware:
    """403 ``{"error": ...}`` for a request from a browser page whose origin is not allowed."""

    def __init__(self, app: ASGIApp, regex: str, wildcard: bool) -> None:
        self.app = app
        self.allowed = re.compile(regex)
        self.wildcard = wildcard

    def allows(self, origin: str, host: str) -> bool:
        if self.wildcard or self.allowed.fullmatch(origin):
            return True
        # same-origin (e.g. the /docs page of a server reached by its own name), as gin-contrib/cors
        return bool(host) and origin.lower() in (f"http://{host}".lower(), f"https://{host}".lower())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
            origins = [v.decode("latin-1") for k, v in headers if k == b"origin"]
            # every Origin header is checked: a later layer might read any one of them
            if not all(self.allows(origin, host) for origin in origins):
                body = json.dumps({"error": "origin not allowed (see OLLAMA_ORIGINS)"}).encode()
                await send({"type": "http.response.start", "status": 403, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class CorsMiddleware:
    """gin-contrib/cors's answers, for requests the origin check let through: every ``OPTIONS``
    from another page is answered here, 204 with the preflight headers; any other request gets
    ``Access-Control-Allow-Origin`` and ``Vary: Origin`` on its answer. A request without
    ``Origin``, or from this server's own origin, is no CORS request and passes untouched."""

    def __init__(self, app: ASGIApp, wildcard: bool) -> None:
        self.app = app
        self.wildcard = wildcard
        vary = [] if wildcard else [("vary", "Origin"), ("vary", "Access-Control-Request-Method"),
                                    ("vary", "Access-Control-Request-Headers")]
        self.preflight = [("access-control-allow-methods", ",".join(ALLOWED_METHODS)),
                          ("access-control-allow-headers", ",".join(canonical_header(h) for h in ALLOWED_HEADERS)),
                          ("access-control-max-age", str(MAX_AGE)), *vary]
        self.normal = [("access-control-expose-headers", "X-Request-Id"),
                       *([] if wildcard else [("vary", "Origin")])]

    def _allow_origin(self, origin: str) -> tuple[str, str]:
        return ("access-control-allow-origin", "*" if self.wildcard else origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        origin = next((v.decode("latin-1") for k, v in headers if k == b"origin"), "")
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
        if not origin or origin in (f"http://{host}", f"https://{host}"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            answer = [*self.preflight, self._allow_origin(origin)]
            await send({"type": "http.response.start", "status": 204,
                        "headers": [(k.encode(), v.encode("latin-1")) for k, v in answer]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in [*self.normal, self._allow_origin(origin)]:
                    if key == "vary":
                        out.add_vary_header(value)
                    else:
                        out[key] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS headers for allowed origins and, outside them, the 403 for every other origin."""
    regex, wildcard = origin_regex(settings.origins)
    app.add_middleware(CorsMiddleware, wildcard=wildcard)
    app.add_middleware(OriginCheckMiddleware, regex=regex, wildcard=wildcard)  # added last: runs first


def host_allowed(host_header: str) -> bool:
    """Loopback addresses and local names (``localhost``, ``*.localhost``, ``*.local``,
    ``*.internal``, this machine's name) are allowed; anything else is not."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if not host:
        return True
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return host == socket.gethostname().lower()


class HostCheckMiddleware:
    """403 for unexpected Host headers while bound to loopback (Ollama's allowedHostsMiddleware)."""

    def __init__(self, app: ASGIApp, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if not host_allowed(host):
                await send({"type": "http.response.start", "status": 403, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def install_host_check(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(HostCheckMiddleware, enabled=settings.address.is_loopback)
