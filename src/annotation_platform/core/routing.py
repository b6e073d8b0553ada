"""The route class every API router uses.

JSON bodies must say they are JSON (415 otherwise), are parsed by orjson (strict UTF-8: a lone surrogate is
malformed JSON, 400) and may not contain NUL characters, which PostgreSQL cannot store in text (422).

An operation marked with `**deprecated(since=..., sunset=...)` is `deprecated: true` in the OpenAPI document
and answers with `Deprecation`, `Sunset` and `Link: <...>; rel="deprecation"` headers (docs/api-versioning.md).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Coroutine
from datetime import date
from email.message import Message
from email.utils import formatdate
from typing import Any

import orjson
from fastapi import Request, Response, params
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        extra = self.openapi_extra or {}
        sunset_headers = deprecation_headers(extra) if SUNSET_KEY in extra else {}

        async def handler(request: Request) -> Response:
            response = await original(JsonRequest(request.scope, request.receive))
            for name, value in sunset_headers.items():
                if name == "Link" and "link" in response.headers:
                    value = f"{response.headers['link']}, {value}"
                response.headers[name] = value
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
