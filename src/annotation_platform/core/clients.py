"""Who is on the other end of a request: the client's IP address, through trusted proxies only."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from annotation_platform.core.errors import Forbidden, send_problem


class IpNotAllowed(Forbidden):
    code = "ip_not_allowed"
    title = "Address not allowed"
    description = "The request comes from an address outside the allowed ranges. Call from an allowed address."


def in_networks(address: str, networks: Iterable[IPv4Network | IPv6Network]) -> bool:
    """Whether `address` lies in any of `networks` (False for anything that is not an IP address)."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_ip(connection: HTTPConnection) -> str | None:
    """The client's address. `X-Forwarded-For` counts only when the direct peer is a trusted proxy (setting
    TRUSTED_PROXIES); then the right-most address that is not itself a trusted proxy is the client, so a
    client cannot choose its address by sending the header itself."""
    peer = connection.client.host if connection.client else None
    trusted = connection.app.state.settings.trusted_proxy_networks
    if peer is None or not trusted or not in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in connection.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop if in_networks(hop, _ANY) else peer
    return hops[0] if hops else peer


_ANY = (IPv4Network("0.0.0.0/0"), IPv6Network("::/0"))


class IpAllowListMiddleware:
    """Answers 403 `ip_not_allowed` to clients outside IP_ALLOWLIST (health probes excepted)."""

    EXEMPT_PREFIXES = ("/health/",)

    def __init__(self, app: ASGIApp, networks: Iterable[IPv4Network | IPv6Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.networks or scope["path"].startswith(self.EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        address = client_ip(HTTPConnection(scope))
        if address is not None and in_networks(address, self.networks):
            await self.app(scope, receive, send)
            return
        await send_problem(scope, send, IpNotAllowed("This service does not accept requests from your address."))
