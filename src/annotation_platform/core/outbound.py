"""Calls to URLs that users chose (webhooks), guarded against server-side request forgery.

A URL's host is resolved and every address it resolves to must be public (not private, loopback, link-local,
multicast, reserved or unspecified), unless the caller allows private targets. The call then connects to the
address that was checked, not to a second lookup's answer, so a DNS answer that changes between the check and
the connection (DNS rebinding) cannot reach an internal address. Redirects are never followed, the whole call
is bounded in time, and only the first bytes of the answer are read.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import httpx

SNIPPET_BYTES = 512


class TargetRefused(Exception):
    """The URL may not be called; the message says why (shown to the webhook's managers)."""


@dataclass(frozen=True)
class Target:
    """Where to connect: `url` with the host replaced by a checked address, and what to tell the server."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    snippet: str
    latency_ms: int


def is_public(address: IPv4Address | IPv6Address) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_url(url: str, *, allow_http: bool) -> httpx.URL:
    """The URL parsed, or TargetRefused for what no call should go to whatever its address."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("the URL must start with https:// (or http:// where allowed)")
    if parsed.scheme == "http" and not allow_http:
        raise TargetRefused("the URL must use https")
    if not parsed.host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("the URL may not hold a user name or password; put credentials in the path or query")
    return parsed


async def resolve(url: str, *, allow_private: bool, allow_http: bool, seconds: float) -> Target:
    """Checks the URL and the addresses its host resolves to now; raises TargetRefused."""
    parsed = check_url(url, allow_http=allow_http)
    if allow_private:
        return Target(str(parsed))
    host = parsed.host
    try:
        addresses = [ip_address(host)]
        literal = True
    except ValueError:
        literal = False
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), seconds
            )
        except (OSError, TimeoutError):
            raise TargetRefused(f"the host {host} cannot be resolved") from None
        addresses = [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    refused = sorted({str(address) for address in addresses if not is_public(address)})
    if refused or not addresses:
        raise TargetRefused(
            f"the host {host} resolves to a private, loopback, link-local or reserved address ({', '.join(refused)})"
        )
    if literal:
        return Target(str(parsed))
    pinned = parsed.copy_with(host=str(addresses[0]))
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(str(pinned), {"Host": host_header}, extensions)


async def post(target: Target, body: bytes, headers: dict[str, str], *, seconds: float) -> Answer:
    """POST `body`; the answer's status and first bytes. Network errors and the time limit raise httpx.HTTPError
    or TimeoutError (after `seconds` in all)."""
    started = time.monotonic()
    snippet = bytearray()
    async with (
        asyncio.timeout(seconds),
        httpx.AsyncClient(timeout=seconds, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "POST", target.url, content=body, headers={**headers, **target.headers}, extensions=target.extensions
        ) as response,
    ):
        async for chunk in response.aiter_raw():
            snippet.extend(chunk)
            if len(snippet) >= SNIPPET_BYTES:
                break
    latency_ms = round((time.monotonic() - started) * 1000)
    # NUL cannot be stored in PostgreSQL text; binary answers keep their shape with U+FFFD instead.
    text = bytes(snippet[:SNIPPET_BYTES]).decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return Answer(response.status_code, text, latency_ms)
