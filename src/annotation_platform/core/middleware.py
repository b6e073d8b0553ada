"""Plain ASGI middleware (no BaseHTTPMiddleware: it buffers bodies and costs a task per request)."""

from __future__ import annotations

import gzip
import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotation_platform.core.errors import PayloadTooLarge, send_problem
from annotation_platform.observability.logs import request_context

access_logger = logging.getLogger("annotation_platform.access")

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-ID` when it is sane) and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID_PATTERN.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        context_token = request_context.set(state)
        started = time.perf_counter()
        status_holder = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            status = status_holder[0] or 500
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            route = route_template(scope)
            # The raw path carries ids only; the query string (which may carry anything) is never logged.
            access_logger.info(
                "%s %s %s %.1fms",
                scope["method"],
                route,
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": duration_ms,
                    # The peer, or the X-Forwarded-For client when the peer is a trusted proxy; written as
                    # its pseudonym (observability/logs.py).
                    "client": (scope.get("client") or ("",))[0] or None,
                },
            )
            request_context.reset(context_token)


def route_template(scope: Scope) -> str:
    """The matched route's template (`/api/v1/projects/{project_id}`), never the raw path; `<unmatched>` when no
    route matched. Rebuilt from the path and the matched path parameters, which works whatever the nesting of
    routers and mounts."""
    if "endpoint" not in scope:
        return "<unmatched>"
    names = {str(value): name for name, value in (scope.get("path_params") or {}).items()}
    if not names:
        return str(scope["path"])
    if "path" in names.values():  # a mount's catch-all (static files): its value may span several segments
        catch_all = next(value for value, name in names.items() if name == "path")
        if catch_all and scope["path"].endswith(catch_all):
            return str(scope["path"])[: -len(catch_all)] + "{path}"
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in scope["path"].split("/"))


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413: by `Content-Length` up front, or while a chunked body streams."""

    UPLOAD_PATH_SUFFIXES = ("/imports",)

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_body_bytes
        # File uploads (imports) have their own, larger limit; a little room for the multipart framing.
        self.max_upload_bytes = (max_upload_bytes or max_body_bytes) + 64 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "POST" and scope["path"].endswith(self.UPLOAD_PATH_SUFFIXES)
        max_body_bytes = self.max_upload_bytes if is_upload else self.default_max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > max_body_bytes:
            error = PayloadTooLarge(f"The body exceeds the limit of {max_body_bytes} bytes.")
            await send_problem(scope, send, error, close=True)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise StarletteHTTPException(413, f"The body exceeds the limit of {max_body_bytes} bytes.")
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class CompressionMiddleware:
    """gzip for whole answers of at least `minimum_size` bytes, to clients that accept it.

    Streamed answers (Server-Sent Events, export downloads, whose `Content-Length` is the file's) pass untouched,
    and so do answers with a strong `ETag` (an annotation's version, compared byte for byte by `If-Match`).
    """

    def __init__(self, app: ASGIApp, minimum_size: int, level: int = 5) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _accepts_gzip(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        passthrough = False

        async def compressing_send(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                return
            assert start is not None  # noqa: S101 - the ASGI protocol sends the start first  # nosec B101
            passthrough = True
            headers = MutableHeaders(scope=start)
            body = message.get("body", b"")
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and len(body) >= self.minimum_size
                and "content-encoding" not in headers
                and not headers.get("etag", "W/").startswith('"')
                and start["status"] == 200
            ):
                body = gzip.compress(body, compresslevel=self.level, mtime=0)
                headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(body))
                headers.add_vary_header("Accept-Encoding")
                message = {**message, "body": body}
            await send(start)
            await send(message)

        await self.app(scope, receive, compressing_send)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value.lower()
    return False
