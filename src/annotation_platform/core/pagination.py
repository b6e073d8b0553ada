"""Keyset (cursor) pagination: every page costs one index range scan, however deep it is.

A cursor is the sort key of the last row of a page, as URL-safe base64 of a JSON array. It is opaque to
clients; one that does not decode to the list's key shape answers 400 `invalid_cursor`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.errors import InvalidCursor

T = TypeVar("T")
RowT = TypeVar("RowT")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512

KeyKind = type[int] | type[str] | type[uuid.UUID]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None
    include_total: bool


PageLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
PageCursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page; omit for the first."),
]
IncludeTotal = Annotated[bool, Query(description="Also count all matching rows (costs one more query).")]


async def page_params(
    limit: PageLimit = DEFAULT_LIMIT, cursor: PageCursor = None, include_total: IncludeTotal = False
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor, include_total=include_total)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    total: int | None = Field(default=None, description="Number of matching rows; only with `include_total=true`.")


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [str(value) if isinstance(value, uuid.UUID) else value for value in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, kinds: Sequence[KeyKind]) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this list produced.") from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise InvalidCursor("The cursor is not one this list produced.")
    try:
        return tuple(_decode_value(value, kind) for value, kind in zip(values, kinds, strict=True))
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidCursor("The cursor is not one this list produced.") from exc


def _decode_value(value: Any, kind: KeyKind) -> Any:
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int and type(value) is int and abs(value) < 2**63:
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError("cursor value of the wrong kind")


@dataclass(frozen=True, slots=True)
class Keyset:
    """The columns a list is ordered by (ascending, unique together) and the Python types of their values."""

    columns: tuple[Any, ...]
    kinds: tuple[KeyKind, ...]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        if len(self.columns) == 1:
            return cast(ColumnElement[bool], self.columns[0] > values[0])
        return tuple_(*self.columns) > tuple_(*values)


async def fetch_page(
    session: AsyncSession,
    statement: Select[Any],
    keyset: Keyset,
    params: PageParams,
    key_of: Callable[[Any], Sequence[Any]],
) -> tuple[list[Any], str | None]:
    """One page of `statement`, and the cursor of the next page (None on the last)."""
    if params.cursor is not None:
        statement = statement.where(keyset.after(decode_cursor(params.cursor, keyset.kinds)))
    statement = statement.order_by(*keyset.columns).limit(params.limit + 1)
    rows = list((await session.execute(statement)).all())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = encode_cursor(key_of(rows[-1]))
    return rows, next_cursor


def page_response(
    request: Request,
    items: Sequence[BaseModel],
    next_cursor: str | None,
    total: int | None,
    public_base_url: str | None = None,
    *,
    has_next: bool | None = None,
) -> Response:
    """The page as JSON, with a `Link: <...>; rel="next"` header when there is a next page (by default: when
    there is a next cursor; a feed hands out a cursor to resume from even when it has nothing more yet)."""
    items_json = b"[" + b",".join(item.__pydantic_serializer__.to_json(item) for item in items) + b"]"
    body = page_body(items_json, next_cursor, total)
    return json_page_response(request, body, next_cursor, public_base_url, has_next=has_next)


def page_body(items_json: bytes, next_cursor: str | None, total: int | None) -> bytes:
    """The page document around `items_json`, a JSON array serialised in one go (no per-object Python work)."""
    return b"".join(
        (
            b'{"items":',
            items_json,
            b',"next_cursor":',
            orjson.dumps(next_cursor),
            b',"total":' + orjson.dumps(total) if total is not None else b"",
            b"}",
        )
    )


def json_page_response(
    request: Request,
    body: bytes,
    next_cursor: str | None,
    public_base_url: str | None = None,
    *,
    has_next: bool | None = None,
) -> Response:
    headers = {}
    if next_cursor is not None and has_next is not False:
        headers["Link"] = f'<{next_page_url(request, next_cursor, public_base_url)}>; rel="next"'
    return Response(body, media_type="application/json", headers=headers)


def next_page_url(request: Request, cursor: str, public_base_url: str | None) -> str:
    """The request's URL with `cursor` in place of its own (Starlette's `include_query_params` parses and
    rebuilds the whole URL twice: 5% of a cached page)."""
    others = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    query = urlencode([*others, ("cursor", cursor)])
    url = request.url
    if public_base_url:
        return f"{public_base_url.rstrip('/')}{url.path}?{query}"
    return f"{str(url).partition('?')[0]}?{query}"
