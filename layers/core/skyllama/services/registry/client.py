"""An HTTP client for Ollama-style (Docker distribution v2) registries, used by pull and push.

It follows Ollama's ``server/images.go``: ``<scheme>://<host>/v2/<namespace>/<model>/...``,
https unless ``insecure``; a 401 with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` is
answered by fetching a token from the realm (same host, or a host on the allowlist) and retrying
once. The token is only ever sent to the registry's own host: redirects (to a CDN) are followed
by hand, at most 10, each target checked by the outbound policy, without credentials.

Every request goes through :class:`~skyllama.services.outbound.PolicyTransport`; responses are
read raw (``Accept-Encoding: identity``; anything encoded is refused), so a gzip bomb is never
inflated and manifests are read with a byte cap.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ... import __version__
from ...errors import NotFound, SkyllamaError
from ...manifest import MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES
from ...names import ModelName
from .outbound import OutboundPolicy, OutboundRefused, PolicyTransport, parse_registry_url

MAX_REDIRECTS = 10
REDIRECTS = {301, 302, 303, 307, 308}
Body = bytes | Callable[[], AsyncIterator[bytes]] | None


class RegistryError(SkyllamaError):
    """The registry answered something unusable (bad status, bad manifest, wrong bytes)."""

    status = 502


def parse_challenge(header: str) -> dict[str, str]:
    """``Bearer realm="…",service="…",scope="…"`` → ``{"realm": …, "service": …, "scope": …}``."""
    kind, _, rest = header.strip().partition(" ")
    if kind.lower() != "bearer":
        return {}
    return {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}


def registry_base(name: ModelName, insecure: bool) -> httpx.URL:
    """``https://host`` (``http://host`` with ``insecure``) for the name's registry."""
    return parse_registry_url(f"{'http' if insecure else 'https'}://{name.host}")  # 400 for a bad host (T-36)


def repo_path(name: ModelName) -> str:
    return f"/v2/{name.namespace}/{name.model}"


class RegistryClient:
    """One registry session: policy-checked transport, bearer token for that host only."""

    def __init__(self, name: ModelName, *, insecure: bool, policy: OutboundPolicy,
                 inner: httpx.AsyncBaseTransport | None = None, dial_log: deque[str] | None = None,
                 timeout: float = 30.0) -> None:
        self.name = name
        self.base = registry_base(name, insecure)
        self.insecure = insecure
        self.policy = policy
        self.transport = PolicyTransport(policy, inner, dial_log)
        self._client = httpx.AsyncClient(
            transport=self.transport, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(timeout, read=max(timeout, 60.0)),
            headers={"User-Agent": f"skyllama/{__version__}", "Accept-Encoding": "identity"})
        self._token: str | None = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    def url(self, path: str) -> httpx.URL:
        return self.base.join(repo_path(self.name) + path)

    def check_base(self) -> None:
        """Refuse before anything is sent when the registry itself is not allowed (blocking: DNS)."""
        self.policy.check_url(self.base)

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self.base.scheme, self.base.host, self.base.port)

    async def _send(self, method: str, url: httpx.URL, headers: dict[str, str], body: Body) -> httpx.Response:
        headers = dict(headers)
        if self._token and self._same_origin(url):
            headers["Authorization"] = f"Bearer {self._token}"
        content: Any = body() if callable(body) else body
        request = self._client.build_request(method, url, headers=headers, content=content)
        try:
            return await self._client.send(request, stream=True)
        except OutboundRefused:
            raise
        except httpx.HTTPError as e:
            raise RegistryError(f"registry request failed: {type(e).__name__}") from e

    async def request(self, method: str, url: httpx.URL, *, headers: dict[str, str] | None = None,
                      body: Body = None, follow: bool = False) -> httpx.Response:
        """Send one request (streamed response: the caller closes it), answering one auth
        challenge and, with ``follow``, following redirects without credentials."""
        headers = headers or {}
        response = await self._send(method, url, headers, body)
        if response.status_code == 401 and self._same_origin(url):
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            await response.aclose()
            if not challenge.get("realm"):
                raise RegistryError("registry refused the request: unauthorized")
            self._token = await self._fetch_token(challenge)
            response = await self._send(method, url, headers, body)
        hops = 0
        while follow and response.status_code in REDIRECTS:
            location = response.headers.get("location")
            await response.aclose()
            hops += 1
            if not location or hops > MAX_REDIRECTS:
                raise RegistryError("registry redirect without a location, or too many redirects")
            target = parse_registry_url(location, url)
            if target.scheme == "http" and url.scheme == "https" and not self.insecure:
                raise OutboundRefused("refusing a redirect from https to http")
            url = target
            response = await self._send(method, url, headers if self._same_origin(url) else _strip(headers), None)
        return response

    async def _fetch_token(self, challenge: dict[str, str]) -> str:
        realm = parse_registry_url(challenge["realm"])
        same = (realm.host, realm.port) == (self.base.host, self.base.port)
        if not same and not self.policy.listed(realm.host):
            raise OutboundRefused(f"refusing token realm on another host ({realm.host})")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.get("service"):
            params.append(("service", challenge["service"]))
        params += [("scope", s) for s in challenge.get("scope", "").split(" ") if s]
        response = await self._send("GET", realm.copy_merge_params(params), {}, None)
        try:
            if response.status_code != 200:
                raise RegistryError(f"token request failed with status {response.status_code}")
            data = await read_capped(response, 64 << 10)
        finally:
            await response.aclose()
        try:
            doc = json.loads(data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or len(token) > 16 << 10:
            raise RegistryError("token realm answered without a token")
        return token

    async def get_manifest(self, tag: str) -> bytes:
        """The raw manifest bytes for ``tag``, capped at :data:`MAX_MANIFEST_BYTES`."""
        response = await self.request("GET", self.url(f"/manifests/{tag}"),
                                      headers={"Accept": MANIFEST_MEDIA_TYPE}, follow=True)
        try:
            if response.status_code == 404:
                raise NotFound("pull model manifest: file does not exist")
            await expect(response, 200)
            return await read_capped(response, MAX_MANIFEST_BYTES)
        finally:
            await response.aclose()


def _strip(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}


async def expect(response: httpx.Response, *statuses: int) -> None:
    """Raise :class:`RegistryError` (with the registry's own error message) unless the status fits."""
    if response.status_code in statuses:
        return
    detail = ""
    try:
        doc = json.loads(await read_capped(response, 16 << 10))
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if errors and isinstance(errors[0], dict):
            detail = f": {str(errors[0].get('code', ''))[:64]} {str(errors[0].get('message', ''))[:200]}"
        elif isinstance(doc, dict) and isinstance(doc.get("error"), str):
            detail = f": {doc['error'][:200]}"
    except (ValueError, SkyllamaError, httpx.HTTPError):
        pass
    raise RegistryError(f"registry answered {response.status_code}{detail}")


def check_encoding(response: httpx.Response) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RegistryError(f"registry sent an encoded body ({encoding[:32]}) that was not asked for")


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The raw body, refusing a declared or actual length over ``cap`` and any content encoding."""
    check_encoding(response)
    declared = response.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > cap):
        raise RegistryError("registry response too large or with a bad Content-Length")
    chunks = bytearray()
    try:
        async for chunk in response.aiter_raw():
            chunks += chunk
            if len(chunks) > cap:
                raise RegistryError("registry response too large")
    except httpx.HTTPError as e:
        raise RegistryError(f"registry response cut off: {type(e).__name__}") from e
    return bytes(chunks)
