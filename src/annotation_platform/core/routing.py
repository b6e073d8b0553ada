"""The route class every API router uses.

JSON bodies must say they are JSON (415 otherwise), are parsed by orjson (strict UTF-8: a lone surrogate is
malformed JSON, 400) and may not contain NUL characters, which PostgreSQL cannot store in text (422).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
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


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await original(JsonRequest(request.scope, request.receive))

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
