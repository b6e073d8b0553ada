"""The SSRF guard's name resolution: the call is pinned to the address that was checked, and a host whose DNS
answer turns private (rebinding) is refused. DNS is the boundary here, so its answers are substituted."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from annotation_platform.core.outbound import TargetRefused, resolve


def answering(*addresses: str) -> Any:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    return getaddrinfo


async def test_a_public_host_is_called_at_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", answering("93.184.216.34"))
    target = await resolve("https://hooks.example.org:8443/in?x=1", allow_private=False, allow_http=False, seconds=1)
    assert target.url == "https://93.184.216.34:8443/in?x=1"
    assert target.headers == {"Host": "hooks.example.org:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example.org"}


async def test_a_host_that_rebinds_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", answering("93.184.216.34", "10.0.0.7"))
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.7"):
        await resolve("https://hooks.example.org/in", allow_private=False, allow_http=False, seconds=1)
    monkeypatch.setattr(loop, "getaddrinfo", answering("169.254.169.254"))
    with pytest.raises(TargetRefused, match="private"):
        await resolve("https://hooks.example.org/in", allow_private=False, allow_http=False, seconds=1)
