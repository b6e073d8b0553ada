"""The route class every API router uses.

JSON bodies must say they are JSON (415 otherwise), are parsed by orjson (strict UTF-8: a lone surrogate is
malformed JSON, 400) and may not contain NUL characters, which PostgreSQL cannot store in text (422).

Reads are conditional: every 200 answer to a GET carries an `ETag` (the route's own, such as an annotation's
version, or else a weak one hashed from the body), `If-None-Match` naming it answers 304 with no body, and
`Cache-Control` says how clients and proxies may keep it (`no-store` for personal data).

An operation marked with `**deprecated(since=..., sunset=...)` is `deprecated: true` in the OpenAPI document
and answers with `Deprecation`, `Sunset` and `Link: <...>; rel="deprecation"` headers (docs/api-versioning.md).
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Callable, Coroutine
from datetime import date
from email.message import Message
from email.utils import formatdate
from typing import Any

import orjson
from fastapi import Request, Response, params
from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, StreamingResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from annotation_platform.core.db import abort_unit_of_work, begin_unit_of_work, commit_unit_of_work
from annotation_platform.core.errors import UnsupportedMediaType


def _is_json(content_type: str) -> bool:
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    )


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(child) for key, child in value.items())
    if isinstance(value, list):
        return any(_contains_nul(child) for child in value)
    return False


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            parsed = orjson.loads(body)
            if b"\\u0000" in body and _contains_nul(parsed):
                raise StarletteHTTPException(422, "Text may not contain NUL characters (\\u0000).")
            self._json = parsed
        return self._json


# Operations under these tags answer with personal data (accounts, sessions, keys, the audit trail): no cache
# anywhere may store them. Everything else may be kept by the client alone and revalidated (`no-cache`).
PERSONAL_TAGS = frozenset({"auth", "users", "api-keys", "audit"})
PERSONAL_CACHE_CONTROL = "private, no-store"
SHARED_CACHE_CONTROL = "private, no-cache"
CONDITIONAL_METHODS = frozenset({"GET", "HEAD"})


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*` or a list of entity tags, compared weakly (a `W/` prefix is ignored)."""
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def conditional(request: Request, response: Response, cache_control: str) -> Response:
    """Adds `ETag` and `Cache-Control` to a whole (not streamed) 200 answer; 304 when the client has it."""
    if response.status_code != 200 or isinstance(response, StreamingResponse | FileResponse):
        return response
    etag = response.headers.get("etag")
    if etag is None:
        etag = f'W/"{hashlib.blake2b(response.body, digest_size=16).hexdigest()}"'
        response.headers["ETag"] = etag
    response.headers.setdefault("Cache-Control", cache_control)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        kept = {name: value for name, value in response.headers.items() if name in ("etag", "cache-control", "link")}
        return Response(status_code=304, headers=kept)
    return response


# The API reference, where a deprecated operation says what replaces it.
DEPRECATION_DOCS = "/docs"
SUNSET_KEY = "x-sunset"
DEPRECATED_SINCE_KEY = "x-deprecated-since"
DEPRECATION_LINK_KEY = "x-deprecation-link"


def deprecated(*, since: date, sunset: date, link: str = DEPRECATION_DOCS) -> dict[str, Any]:
    """Route options for an operation on its way out: `@router.get(..., **deprecated(since=..., sunset=...))`.

    `sunset` is the first day it may be gone; docs/api-versioning.md says how far ahead it must be."""
    if sunset <= since:
        raise ValueError("an operation's sunset comes after its deprecation")
    return {
        "deprecated": True,
        "openapi_extra": {
            DEPRECATED_SINCE_KEY: since.isoformat(),
            SUNSET_KEY: sunset.isoformat(),
            DEPRECATION_LINK_KEY: link,
        },
    }


def deprecation_headers(extra: dict[str, Any]) -> dict[str, str]:
    """RFC 9745 `Deprecation` (a structured date), RFC 8594 `Sunset` (an HTTP date) and the policy's link."""
    since = calendar.timegm(date.fromisoformat(extra[DEPRECATED_SINCE_KEY]).timetuple())
    sunset = calendar.timegm(date.fromisoformat(extra[SUNSET_KEY]).timetuple())
    return {
        "Deprecation": f"@{since}",
        "Sunset": formatdate(sunset, usegmt=True),
        "Link": f'<{extra[DEPRECATION_LINK_KEY]}>; rel="deprecation"; type="text/html"',
    }


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        personal = not PERSONAL_TAGS.isdisjoint(str(tag) for tag in self.tags)
        cache_control = PERSONAL_CACHE_CONTROL if personal else SHARED_CACHE_CONTROL
        extra = self.openapi_extra or {}
        sunset_headers = deprecation_headers(extra) if SUNSET_KEY in extra else {}

        async def handler(request: Request) -> Response:
            begin_unit_of_work(request.scope)
            try:
                response = await original(JsonRequest(request.scope, request.receive))
                await commit_unit_of_work(request.scope)
            except BaseException:
                await abort_unit_of_work(request.scope)
                raise
            for name, value in sunset_headers.items():
                if name == "Link" and "link" in response.headers:
                    value = f"{response.headers['link']}, {value}"
                response.headers[name] = value
            if request.method in CONDITIONAL_METHODS:
                return conditional(request, response, cache_control)
            return response

        if self.body_field is None:
            return handler
        expects_form = isinstance(self.body_field.field_info, params.Form)

        async def checked_handler(request: Request) -> Response:
            has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
            if has_body:
                content_type = request.headers.get("content-type", "")
                accepted = _is_form(content_type) if expects_form else _is_json(content_type)
                if not accepted:
                    wanted = "a form" if expects_form else "application/json"
                    raise UnsupportedMediaType(f"Send the body as {wanted}; got {content_type or 'no Content-Type'}.")
            return await handler(request)

        return checked_handler


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


class ApiRouter(APIRouter):
    """A router that says at once when none of its paths can match a request.

    FastAPI tries an application's routes one by one, and an included router matches each of its own routes
    (twice for the router that serves the request): the item page, 38 routes in, spent a quarter of a millisecond,
    a fifth of a cached page's time, finding its route. One regular expression over all of a router's paths
    rejects a request meant for another router in one step. It anchors at the end only, so it holds under any
    prefix the router is included with; a match only lets FastAPI's own matching run."""

    _any_path: tuple[int, re.Pattern[str]] | None = None

    def __init__(self, **options: Any) -> None:
        super().__init__(route_class=ApiRoute, **options)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not self._any_path_regex().search(scope["path"]):
            return Match.NONE, {}
        return super().matches(scope)

    def _any_path_regex(self) -> re.Pattern[str]:
        routes: list[BaseRoute] = self.routes
        if self._any_path is None or self._any_path[0] != len(routes):
            api_routes = [route for route in routes if isinstance(route, APIRoute)]
            if len(api_routes) == len(routes):
                paths = [_NAMED_GROUP.sub("(?:", route.path_regex.pattern.removeprefix("^")) for route in api_routes]
                pattern = "|".join(f"(?:{path})" for path in paths) or "(?!)"
            else:  # a mount or an included router: matched the slow way
                pattern = ""
            self._any_path = (len(routes), re.compile(pattern))
        return self._any_path[1]
