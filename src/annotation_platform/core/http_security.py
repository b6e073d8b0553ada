"""Response headers that make browsers safer with our responses, and which origins and hosts we answer."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
