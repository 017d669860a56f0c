"""``/ui``: the web console, static files shipped in the package (``ui_static/``), served offline.

The console is plain HTML, CSS and JavaScript modules (no build step, no CDN, no framework). The
files hold no data: every figure the console shows comes from the API, each call carrying the
key the user typed (``Authorization: Bearer``, kept in the tab's ``sessionStorage``; no cookie,
so a page on another site cannot make the browser send it: nothing to forge, CSRF-free). That is
why the console's own routes are public in the auth policy (``http/policy.py``), as ``/`` is.

Every answer carries a strict Content-Security-Policy: scripts, styles and connections only from
this origin, no inline script or style, no plugin, no framing, no form posts, no ``<base>``. The
console calls the API with URLs relative to its own (``../api/...``), so it also works behind a
path prefix such as API Gateway's stage (``/prod/ui/``), where the Origin its requests send is
this server's own and passes the T-34 check.

The files are read once, when this module is imported, into an allowlist: a request can name only
a file that shipped, never a path on the server (no traversal, no symlink, no listing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .. import __version__
from .deps import Rt

STATIC = Path(__file__).with_name("ui_static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8",
         ".png": "image/png"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                    "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(folder: Path = STATIC) -> dict[str, Asset]:
    """Every regular file under ``folder`` by its relative POSIX path (links and odd types skipped)."""
    assets = {}
    for path in sorted(folder.rglob("*")):
        media = TYPES.get(path.suffix)
        if media is None or path.is_symlink() or not path.is_file():
            continue
        body = path.read_bytes()
        assets[path.relative_to(folder).as_posix()] = Asset(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return assets


ASSETS = load_assets()
router = APIRouter()


def _asset_response(request: Request, asset: Asset) -> Response:
    # no-cache: revalidated each time (the ETag makes that a 304), so an upgrade is seen at once
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    return Response(body, media_type=asset.media_type, headers={**headers, "Content-Length": str(len(asset.body))})


@router.api_route("/ui", methods=["GET", "HEAD"], include_in_schema=False)
async def console_redirect() -> Response:
    # relative, so a path prefix (API Gateway's /prod) is kept
    return RedirectResponse("ui/", status_code=308, headers=SECURITY_HEADERS)


@router.api_route("/ui/", methods=["GET", "HEAD"], include_in_schema=False)
async def console(request: Request) -> Response:
    return _asset_response(request, ASSETS["index.html"])


@router.api_route("/ui/config.json", methods=["GET", "HEAD"], include_in_schema=False)
async def console_config(rt: Rt) -> dict[str, Any]:
    """What the console needs before it has a key: whether one is needed, and the prices of the
    cost estimates (``SKYLLAMA_PRICES``). Nothing here is secret."""
    return {"auth": rt.settings.auth_enabled, "version": __version__, "prices": rt.settings.price_list.to_wire()}


@router.api_route("/ui/{asset:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def console_asset(request: Request, asset: str) -> Response:
    found = ASSETS.get(asset)
    if found is None or asset == "index.html":
        return JSONResponse({"error": "not found"}, status_code=404, headers=SECURITY_HEADERS)
    return _asset_response(request, found)
