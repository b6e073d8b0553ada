"""The application factory: settings in, a ready FastAPI app out."""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from annotation_platform import __version__
from annotation_platform.agreement.endpoints import router as agreement_router
from annotation_platform.annotation.endpoints import router as annotation_router
from annotation_platform.api_key.endpoints import router as api_key_router
from annotation_platform.audit.endpoints import router as audit_router
from annotation_platform.audit.monitor import DeniedAccessMonitor
from annotation_platform.auth.endpoints import router as auth_router
from annotation_platform.backup.endpoints import router as backup_router
from annotation_platform.change.endpoints import router as change_router
from annotation_platform.config import Environment, Settings, get_settings, parse_networks
from annotation_platform.container.endpoints import router as container_router
from annotation_platform.core.cache import create_cache
from annotation_platform.core.clients import IpAllowListMiddleware
from annotation_platform.core.db import create_engine, create_sessionmaker
from annotation_platform.core.errors import (
    ERROR_REFERENCE_PATH,
    PROBLEM_MEDIA_TYPE,
    AppError,
    install_error_handlers,
)
from annotation_platform.core.http_security import (
    CORS_ALLOWED_HEADERS,
    CORS_EXPOSED_HEADERS,
    AllowedHostsMiddleware,
    SecurityHeadersMiddleware,
    split_list,
)
from annotation_platform.core.middleware import BodySizeLimitMiddleware, CompressionMiddleware, RequestIdMiddleware
from annotation_platform.core.migrations import MigrationsNotFound, head_revisions
from annotation_platform.core.openapi import finish_document
from annotation_platform.core.queue import create_celery
from annotation_platform.core.rate_limit import RateLimiter, RateLimitHeadersMiddleware
from annotation_platform.data_export.endpoints import router as export_router
from annotation_platform.data_import.endpoints import router as import_router
from annotation_platform.health.endpoints import router as health_router
from annotation_platform.item.endpoints import router as item_router
from annotation_platform.job.endpoints import router as job_router
from annotation_platform.member.endpoints import router as member_router
from annotation_platform.observability.errors import init_sentry
from annotation_platform.observability.metrics import MetricsMiddleware, instrument_engine
from annotation_platform.observability.metrics import router as metrics_router
from annotation_platform.project.endpoints import router as project_router
from annotation_platform.user.endpoints import router as user_router
from annotation_platform.version.endpoints import router as version_router
from annotation_platform.webhook.endpoints import router as webhook_router

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DOCS_ASSETS_PATH = "/static/docs"

DESCRIPTION = """
A multi-user annotation backend: projects hold containers (a chat room, a document set), containers hold
items (chat turns, paragraphs), and project members annotate items.

* **Authentication**: `POST /api/v1/auth/jwt/login` with form fields `username` (your email) and `password`
  returns a bearer token; send it as `Authorization: Bearer <token>`. Scripts may use an API key
  (`POST /api/v1/api-keys`) as `X-API-Key: <key>` instead.
* **Lists** are cursor-paginated: `limit` (1-500, default 50) and `cursor` (the previous page's `next_cursor`).
* **Errors** are `application/problem+json` documents with a stable `code`; see [the error reference](/errors).
* Resources you may not see answer **404**; those you may see but not change answer **403**.
"""

OPENAPI_TAGS = [
    {"name": "auth", "description": "Registration, login and logout."},
    {"name": "users", "description": "Your own account, and account administration."},
    {"name": "api-keys", "description": "Your API keys: scoped, expiring, IP-restricted credentials for scripts."},
    {"name": "projects", "description": "Projects: units of work with their own members."},
    {"name": "members", "description": "Who belongs to a project, with which role."},
    {
        "name": "containers",
        "description": "Sets of items inside a project (chat rooms, document collections).",
    },
    {"name": "items", "description": "The things to annotate, in `sequence` order."},
    {"name": "annotations", "description": "Labels on items, one author each, versioned."},
    {"name": "changes", "description": "A project's change feed: what was created, updated or deleted, in order."},
    {"name": "jobs", "description": "Background work (imports, exports, backups): status, progress, errors."},
    {"name": "imports", "description": "Loading CSV, JSON and JSON Lines files into a container."},
    {"name": "exports", "description": "Writing a project's items and annotations to JSON Lines, JSON or CSV."},
    {"name": "backups", "description": "Database backups (superusers): list them, take one now."},
    {"name": "agreement", "description": "Inter-annotator agreement, disagreements, and adjudicated gold sets."},
    {"name": "versions", "description": "Named, immutable snapshots of a project: take, list, compare, restore."},
    {"name": "audit", "description": "The audit trail: who changed what, when, from where."},
    {"name": "webhooks", "description": "Signed notifications of a project's events, with retries and a delivery log."},
    {"name": "health", "description": "Probes for load balancers and orchestrators."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings = settings.model_copy(update={"secret_key": settings.resolved_secret_key()})
    engine = create_engine(settings)
    init_sentry(settings)
    redis = (
        Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1) if settings.redis_url else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()
        if _app.state.cache is not None:
            await _app.state.cache.close()
        if redis is not None:
            await redis.aclose()

    app = FastAPI(
        title="annotation-platform",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.redis = redis
    app.state.key_ring = settings.resolved_key_ring()
    app.state.queue = create_celery(settings)
    app.state.cache = create_cache(settings)
    app.state.sessionmaker = create_sessionmaker(engine, app.state.queue, app.state.cache, app.state.key_ring)
    try:
        app.state.migration_heads = head_revisions()
    except MigrationsNotFound:
        logger.warning("migration scripts not found; /health/ready will report not ready")
        app.state.migration_heads = None

    app.state.rate_limiter = RateLimiter(settings)
    install_error_handlers(app)
    if settings.gzip_min_bytes:
        app.add_middleware(CompressionMiddleware, minimum_size=settings.gzip_min_bytes)
    app.add_middleware(RateLimitHeadersMiddleware)
    if settings.denied_burst_threshold:
        app.add_middleware(DeniedAccessMonitor, settings=settings)
    if settings.ip_allowlist:
        app.add_middleware(IpAllowListMiddleware, networks=parse_networks(settings.ip_allowlist))
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    _install_http_security(app, settings)
    app.add_middleware(RequestIdMiddleware)  # outside the allow-list, so that its 403 carries a request id too

    for router in (
        auth_router,
        user_router,
        api_key_router,
        project_router,
        member_router,
        container_router,
        item_router,
        annotation_router,
        change_router,
        job_router,
        import_router,
        export_router,
        backup_router,
        agreement_router,
        audit_router,
        webhook_router,
        version_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health_router)
    if settings.metrics_enabled:
        instrument_engine(engine, settings)
        # Outermost: it counts every answer, those of the other middlewares (413, 403, 429) too.
        app.add_middleware(MetricsMiddleware)
        app.include_router(metrics_router)
    _install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _install_http_security(app: FastAPI, settings: Settings) -> None:
    """Security headers on every response; CORS for the configured origins; only the configured Host names."""
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=split_list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            # Only the OpenID Connect login's binding cookie travels this way; the API authenticates by header.
            allow_credentials=True,
            max_age=600,
        )
    if settings.allowed_hosts:
        app.add_middleware(AllowedHostsMiddleware, hosts=split_list(settings.allowed_hosts))
    elif settings.environment is Environment.production:
        logger.warning("ALLOWED_HOSTS is not set: the service answers requests for any Host header")


def _install_docs(app: FastAPI) -> None:
    """Swagger UI, ReDoc and the error reference, served from packaged assets: no CDN, works offline."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="annotation-platform API",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="annotation-platform API",
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ERROR_REFERENCE_PATH, include_in_schema=False)
    async def error_reference() -> HTMLResponse:
        rows = "".join(
            f'<tr id="{html.escape(code)}"><td><code>{html.escape(code)}</code></td><td>{error.status}</td>'
            f"<td>{html.escape(error.title)}</td><td>{html.escape(error.description)}</td></tr>"
            for code, error in sorted(AppError.registry.items(), key=lambda pair: (pair[1].status, pair[0]))
        )
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>Error reference</title></head><body>"
            "<h1>Error reference</h1><p>Every error is an <code>application/problem+json</code> document whose "
            "<code>code</code> is one of these.</p><table border='1' cellpadding='4'><tr><th>code</th>"
            f"<th>status</th><th>title</th><th>what to do</th></tr>{rows}</table></body></html>"
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, with error schemas moved to `application/problem+json` where they belong."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.isdigit() and int(status) >= 400 and PROBLEM_MEDIA_TYPE in content:
                    # FastAPI copies the error model under the route's own media type (JSON, or an event stream).
                    moved = [content.pop(media) for media in list(content) if media != PROBLEM_MEDIA_TYPE]
                    json_content: dict[str, Any] = next((media for media in moved if "schema" in media), {})
                    if "schema" in json_content:
                        content[PROBLEM_MEDIA_TYPE]["schema"] = json_content["schema"]
                if status == "422" and "HTTPValidationError" in str(content):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    response["description"] = "Validation failed (`validation_failed`)"
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = finish_document(schema)
    return schema
