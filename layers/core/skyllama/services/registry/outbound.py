"""Outbound safety for pull and push (T-06, T-07): which hosts and addresses skyllama may contact.

Every outbound request (manifest, blob, token realm, each redirect target) goes through
:class:`PolicyTransport`, which checks the URL with :class:`OutboundPolicy` *before* anything is
dialled and then pins the connection to the address it checked (the URL's host is replaced by
that address; the ``Host`` header and the TLS server name keep the original name, so
certificates are still verified against it). A DNS answer that changes between the check and
the connection (rebinding) therefore cannot redirect the request.

Rules, in order:

- only ``http`` and ``https``;
- a host that reads as an IPv4 address (its last label is a number) must be written as one in
  canonical dotted-quad form: ``0177.0.0.1``, ``0x7f.1``, ``127.1`` or ``2130706433`` are refused
  with a 400 (:class:`NonCanonicalAddress`), because the C resolver reads them as ``127.0.0.1``
  while a name check or ``ipaddress`` would not (T-36);
- never the Lambda runtime API (``AWS_LAMBDA_RUNTIME_API``), link-local addresses
  (169.254.0.0/16, fe80::/10, so instance metadata 169.254.169.254), ``fd00:ec2::254``,
  unspecified, multicast or reserved addresses;
- the host must match the allowlist (exact name or ``*.suffix``), or be a loopback name or
  address while loopback is allowed;
- every address the name resolves to is checked: loopback only when allowed; private ranges
  (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) only for a host listed exactly.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio
import httpx

from ...errors import SkyllamaError
from ...settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                               "100.64.0.0/10", "fc00::/7")]
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class OutboundRefused(SkyllamaError):
    """The outbound policy forbids contacting this URL (nothing was sent)."""

    status = 403


class NonCanonicalAddress(OutboundRefused):
    """A registry address that does not parse, or whose host is an IPv4 address in a
    non-canonical notation (octal, hex, short forms): a 400, the request itself is wrong."""

    status = 400


_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def require_canonical_host(host: str) -> str:
    """``host`` (without a port) unchanged, or :class:`NonCanonicalAddress` when it would be
    read as an IPv4 address but is not a canonical dotted quad. A host whose last label is a
    number (decimal, octal or ``0x`` hex) is an address to ``inet_aton``, getaddrinfo and the
    WHATWG URL parser, never a DNS name (no top-level domain is numeric)."""
    bare = host.rstrip(".")
    last = bare.rsplit(".", 1)[-1]
    if ":" in bare or not _NUMERIC_LABEL.fullmatch(last):
        return host  # a DNS name, or an IPv6 literal (``ipaddress`` reads those canonically)
    try:
        canonical = str(ipaddress.IPv4Address(bare))
    except ValueError:
        canonical = ""
    if canonical != bare:
        raise NonCanonicalAddress(f"host {host!r} is not a canonical address (write an IPv4 address "
                                  "as four decimal numbers, e.g. 127.0.0.1)")
    return host


def parse_registry_url(text: str, base: httpx.URL | None = None) -> httpx.URL:
    """A registry URL (``base`` joined with ``text`` for a redirect's Location), or a 400 when it
    does not parse or its host is a non-canonical address, instead of httpx's ``InvalidURL``."""
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        host = text.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        require_canonical_host(host)  # the likelier cause: name it
        raise NonCanonicalAddress(f"invalid registry address {text[:300]!r}") from None
    require_canonical_host(url.host)
    return url


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise OutboundRefused(f"cannot resolve registry host {host!r}") from e
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class OutboundPolicy:
    """Which URLs pull and push may contact; :meth:`check` returns the address to dial."""

    allowlist: tuple[str, ...]
    allow_loopback: bool = False
    runtime_api: str | None = None
    resolver: Resolver = field(default=_resolve, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None,
                      resolver: Resolver | None = None) -> OutboundPolicy:
        env = os.environ if environ is None else environ
        entries = tuple(e.strip().lower().rstrip(".") for e in settings.registry_allowlist.split(",") if e.strip())
        return cls(allowlist=entries, allow_loopback=settings.registry_allow_loopback,
                   runtime_api=env.get("AWS_LAMBDA_RUNTIME_API") or None, resolver=resolver or _resolve)

    def listed(self, host: str, *, exact: bool = False) -> bool:
        """Whether ``host`` is on the allowlist (with ``exact``, only by an exact entry)."""
        host = host.lower().rstrip(".")
        for entry in self.allowlist:
            if entry == host:
                return True
            if not exact and entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        return False

    def _runtime_api(self) -> tuple[str, int | None] | None:
        if not self.runtime_api:
            return None
        url = httpx.URL(f"http://{self.runtime_api}")
        return url.host.lower(), url.port

    def _forbidden_address(self, ip: IPAddress, host: str, port: int) -> str | None:
        runtime = self._runtime_api()
        if runtime is not None:
            rhost, rport = runtime
            rip = _parse_ip(rhost)
            if (rip == ip or rhost == host) and (rport is None or rport == port):
                return "the Lambda runtime API"
        if ip in _METADATA or ip.is_link_local:
            return "a link-local or instance metadata address"
        if ip.is_unspecified or ip.is_multicast or (ip.is_reserved and not ip.is_loopback):
            return "a reserved address"
        if ip.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if any(ip in net for net in _PRIVATE) or ip.is_private:
            return None if self.listed(host, exact=True) else "a private address"
        return None

    def check(self, scheme: str, host: str, port: int | None) -> str:
        """Refuse (:class:`OutboundRefused`) or return the checked address to connect to."""
        host = host.lower().rstrip(".")
        if scheme not in ("http", "https"):
            raise OutboundRefused(f"refusing outbound {scheme or 'unknown'} URL")
        require_canonical_host(host)
        port = port or (443 if scheme == "https" else 80)
        literal = _parse_ip(host)
        runtime = self._runtime_api()
        if runtime is not None and runtime[0] == host and runtime[1] in (None, port):
            raise OutboundRefused(f"refusing to contact {host}: the Lambda runtime API")
        if literal is not None:
            if literal.is_loopback and self.allow_loopback:
                addresses = [str(literal)]
            elif not self.listed(host, exact=True) and not literal.is_loopback:
                reason = self._forbidden_address(literal, host, port) or "not on the registry allowlist"
                raise OutboundRefused(f"refusing to contact {host}: {reason}")
            else:
                addresses = [str(literal)]
        elif self.listed(host) or (host in _LOOPBACK_NAMES and self.allow_loopback):
            addresses = self.resolver(host, port)
        else:
            raise OutboundRefused(f"refusing to contact {host}: not on the registry allowlist")
        if not addresses:
            raise OutboundRefused(f"cannot resolve registry host {host!r}")
        for text in addresses:
            ip = _parse_ip(text)
            why = "an unparsable address" if ip is None else self._forbidden_address(ip, host, port)
            if why:
                raise OutboundRefused(f"refusing to contact {host}: it resolves to {why}")
        return addresses[0]

    def check_url(self, url: httpx.URL | str) -> str:
        url = httpx.URL(url)
        return self.check(url.scheme, url.host, url.port)


class PolicyTransport(httpx.AsyncBaseTransport):
    """Checks every request with the policy (DNS off the event loop), then dials the checked
    address only. ``attempted`` logs every URL asked for; ``dialed`` only those let through."""

    def __init__(self, policy: OutboundPolicy, inner: httpx.AsyncBaseTransport | None = None,
                 dial_log: deque[str] | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport(retries=0)
        self.dialed: deque[str] = dial_log if dial_log is not None else deque(maxlen=1000)
        self.attempted: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.attempted.append(str(url.copy_with(query=None)))
        address = await anyio.to_thread.run_sync(self.policy.check_url, url)
        self.dialed.append(f"{url.host}:{url.port or ''} -> {address}")
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        request.url = url.copy_with(host=address)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class Outbound:
    """This process's way out: the policy, the transport under it (tests pass a fake or a
    recorder), and the log of dialled addresses (tests read it)."""

    policy: OutboundPolicy
    inner: httpx.AsyncBaseTransport | None = None
    dialed: deque[str] = field(default_factory=lambda: deque(maxlen=1000))
