from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from ipaddress import ip_network
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from annotation_platform.core.schemas import Id, InputModel, ReadModel

MAX_ALLOWED_RANGES = 50


class Scope(StrEnum):
    """What a key may do, on top of (never beyond) what its user may do."""

    read = "read"  # GET and HEAD
    write = "write"  # every method
    admin = "admin"  # the user's superuser powers (superusers only)


def _network(value: str) -> str:
    try:
        return str(ip_network(value, strict=False))
    except ValueError as exc:
        raise ValueError("not an IP address or CIDR range, e.g. 10.0.0.0/8 or 2001:db8::/32") from exc


Cidr = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_network)]


class ApiKeyCreate(InputModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        examples=["nightly export"]
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope), examples=[["read"]])
    expires_at: AwareDatetime | None = Field(default=None, description="Unset = never expires. Must be in the future.")
    allowed_ips: list[Cidr] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_RANGES,
        description="Only requests from these addresses or CIDR ranges may use the key; unset = any address.",
        examples=[["192.0.2.0/24"]],
    )


class ApiKeyRead(ReadModel):
    id: Id
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart; not a secret.")
    scopes: list[Scope]
    expires_at: datetime | None
    allowed_ips: list[str] | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret, shown this once: send it as `X-API-Key`. It cannot be read again.")
