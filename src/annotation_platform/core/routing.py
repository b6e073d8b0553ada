"""The route class every API router uses: JSON bodies must say they are JSON (415 otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

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


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
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
