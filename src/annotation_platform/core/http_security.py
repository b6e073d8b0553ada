"""Response headers that make browsers safer with our responses, and which origins and hosts we answer."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotation_platform.core.errors import BadRequest, send_problem

# API responses are data, never pages: nothing may load from them or frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc are served from our own assets, but start with an inline script, and ReDoc runs a worker
# from a blob: URL.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=31536000; includeSubDomains"

CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "If-Match", "Idempotency-Key"]
CORS_EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Location",
    "ETag",
    "Link",
]


class SecurityHeadersMiddleware:
    """`X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy` and a CSP on every response, and HSTS
    when the request came over HTTPS (behind a proxy: when the server was told so, e.g. uvicorn's
    `--proxy-headers` with `--forwarded-allow-ips`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(DOCS_PATHS)
        is_https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", DOCS_CSP if is_docs else API_CSP)
                if is_https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InvalidHost(BadRequest):
    code = "invalid_host"
    title = "Unknown host"
    description = "The `Host` header names a host this service does not answer to. Call it by its configured name."


class AllowedHostsMiddleware:
    """Answers 400 `invalid_host` unless the `Host` header is one of ALLOWED_HOSTS (`*.example.org`: any name
    under it). Health probes are exempt: orchestrators call them by the pod's address."""

    EXEMPT_PREFIXES = ("/health/",)

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        names = [host.lower() for host in hosts]
        self.exact = frozenset(name for name in names if not name.startswith("*."))
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def allows(self, host: str) -> bool:
        name = host.lower()
        name = name[1 : name.find("]")] if name.startswith("[") else name.rsplit(":", 1)[0]
        return name in self.exact or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.allows(Headers(scope=scope).get("host", "")):
            await self.app(scope, receive, send)
            return
        await send_problem(scope, send, InvalidHost("This service does not answer to that host name."))


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
