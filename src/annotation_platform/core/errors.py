"""One error family, rendered as RFC 9457 problem documents by one set of handlers.

Every error the API can answer with is a subclass of `AppError` with a stable `code`. Subclasses register
themselves, so the error reference (`/errors`, `docs/errors.md`) and the OpenAPI `responses=` of each route
are built from the same classes the services raise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Scope, Send

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
ERROR_REFERENCE_PATH = "/errors"


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. `['body', 'items', 3, 'external_id']`.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="URI of this code's entry in the error reference.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code; see the error reference.")
    instance: str = Field(description="The path of the request that failed.")
    request_id: str | None = None
    errors: list[ErrorDetail] | None = Field(
        default=None, description="Per-field or per-row problems, when there are several."
    )


class AppError(Exception):
    """Base of every error the API answers with."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    description: ClassVar[str] = "Something failed on the server. Retry later; report the request_id if it persists."
    registry: ClassVar[dict[str, type[AppError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        existing = AppError.registry.get(cls.code)
        if existing is not None and existing.status != cls.status:
            raise TypeError(f"error code {cls.code!r} registered with two statuses")
        AppError.registry.setdefault(cls.code, cls)

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}
        super().__init__(self.detail)


AppError.registry[AppError.code] = AppError


class BadRequest(AppError):
    status = 400
    code = "bad_request"
    title = "Bad request"
    description = "The request could not be understood. Fix it before retrying."


class MalformedJson(AppError):
    status = 400
    code = "malformed_json"
    title = "Malformed JSON"
    description = "The body is not valid JSON. Send a well-formed JSON document."


class InvalidCursor(AppError):
    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"
    description = "The `cursor` was not produced by this list. Start again without a cursor."


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"
    title = "Not authenticated"
    description = "No valid credentials: log in again (the token may be expired or revoked)."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
    description = "You can see this resource but your role does not allow this action."


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"
    description = "No such resource, or you may not see it. Check the id and your membership."


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"
    description = "This path does not support the HTTP method; the `Allow` header lists those it does."


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"
    description = "The request conflicts with the current state, often a concurrent change. Re-read and retry."


class PreconditionFailed(AppError):
    status = 412
    code = "precondition_failed"
    title = "Precondition failed"
    description = "`If-Match` did not match the current ETag: someone changed it. Re-read, then retry."


class PreconditionRequired(AppError):
    status = 428
    code = "if_match_required"
    title = "If-Match required"
    description = "This project makes `If-Match` mandatory for this change: read the resource, send its `ETag`."


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"
    description = "The body exceeds the configured limit. Split it into smaller requests."


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"
    description = "The `Content-Type` is not one this operation accepts (usually `application/json`)."


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"
    description = "One or more fields are invalid; `errors` names each. Fix them and retry."


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    description = "A dependency is down or not ready. Retry after a short wait."


def problem_body(error: AppError, path: str, request_id: str | None) -> bytes:
    body: dict[str, Any] = {
        "type": f"{ERROR_REFERENCE_PATH}#{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "instance": path,
        "request_id": request_id,
    }
    if error.errors is not None:
        body["errors"] = error.errors
    return orjson.dumps(body)


async def send_problem(scope: Scope, send: Send, error: AppError, *, close: bool = False) -> None:
    """The problem document of `error` as the whole response, from a middleware below the app's handlers."""
    body = problem_body(error, scope["path"], scope.get("state", {}).get("request_id"))
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def problem_response(request: Request, error: AppError) -> Response:
    request_id = request_id_of(request)
    headers = dict(error.headers)
    if request_id:
        headers["X-Request-ID"] = request_id
    return Response(
        problem_body(error, request.url.path, request_id),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def validation_error_details(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without `input` and `ctx`, which could echo secrets or huge values back."""
    return [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in errors
    ]


async def _on_app_error(request: Request, exc: Exception) -> Response:
    return problem_response(request, cast(AppError, exc))


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    details = validation_error_details(cast(RequestValidationError, exc).errors())
    if any(detail["type"] == "json_invalid" for detail in details):
        return problem_response(request, MalformedJson("The body is not valid JSON.", errors=details))
    return problem_response(request, ValidationFailed(f"{_plural(len(details), 'field')} invalid", errors=details))


_STATUS_ERRORS: dict[int, type[AppError]] = {
    400: BadRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    503: ServiceUnavailable,
}


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in our shape."""
    exc = cast(StarletteHTTPException, exc)
    error_class = _STATUS_ERRORS.get(exc.status_code, BadRequest if exc.status_code < 500 else AppError)
    error: AppError
    if exc.status_code == 404:
        error = NotFound(f"No resource at {request.url.path}.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    else:
        error = error_class(exc.detail if isinstance(exc.detail, str) else None)
    error.headers.update(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        error.headers["Allow"] = allowed
    return problem_response(request, error)


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path; Starlette's own `Allow` names only the first route's."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [
        method
        for method in _HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def _on_integrity_error(request: Request, exc: Exception) -> Response:
    """A constraint the services did not foresee, usually a concurrent write: a conflict, not a crash."""
    logger.warning("integrity error on %s %s: %s", request.method, request.url.path, type(exc.__cause__).__name__)
    return problem_response(
        request, Conflict("The change conflicts with data written concurrently. Re-read and retry.")
    )


def _sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE behind a driver error (asyncpg names it `sqlstate`, others `pgcode`), or ''."""
    cause: Any = exc.orig
    while cause is not None:
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if code:
            return str(code)
        cause = cause.__cause__
    return ""


async def _on_database_error(request: Request, exc: Exception) -> Response:
    """A value the database refuses to store (SQLSTATE class 22, data exception) is the client's input: 422. A
    connection lost under the request (a restart, a failover: SQLAlchemy has already replaced the pool's older
    connections) is the service's, briefly: 503, to be retried."""
    error = cast(DBAPIError, exc)
    sqlstate = _sqlstate(error)
    if sqlstate.startswith("22"):
        return problem_response(
            request, ValidationFailed("A value in the request cannot be stored (a character or number out of range).")
        )
    if error.connection_invalidated or sqlstate.startswith(_CONNECTION_LOST):
        logger.warning("database connection lost on %s %s", request.method, request.url.path)
        unavailable = ServiceUnavailable("The connection to the database was lost. Retry.")
        unavailable.headers["Retry-After"] = "1"
        return problem_response(request, unavailable)
    return await _on_unhandled(request, exc)


# Connection exceptions, and the server shutting down or cancelling the session.
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


async def _on_unhandled(request: Request, exc: Exception) -> Response:
    logger.error(
        "unhandled error on %s %s request_id=%s",
        request.method,
        request.url.path,
        request_id_of(request),
        exc_info=exc,
    )
    return problem_response(request, AppError("An unexpected error occurred."))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unhandled)


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these errors: one entry per status listing the codes it may carry."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, [])
        if error not in by_status[error.status]:
            by_status[error.status].append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        codes = ", ".join(f"`{cls.code}`" for cls in classes)
        responses[status] = {
            "model": Problem,
            "description": f"{classes[0].title if len(classes) == 1 else 'Error'} ({codes})",
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "examples": {
                        cls.code: {
                            "summary": cls.title,
                            "value": {
                                "type": f"{ERROR_REFERENCE_PATH}#{cls.code}",
                                "title": cls.title,
                                "status": cls.status,
                                "detail": cls.description,
                                "code": cls.code,
                                "instance": "/api/v1/...",
                                "request_id": "5d7c1f1e9b2a4c1e",
                            },
                        }
                        for cls in classes
                    }
                }
            },
        }
    return responses


BODY_ERRORS: tuple[type[AppError], ...] = (ValidationFailed, MalformedJson, UnsupportedMediaType)
"""What any operation with a JSON body may answer when the body is wrong."""

LIST_ERRORS: tuple[type[AppError], ...] = (NotAuthenticated, NotFound, InvalidCursor, ValidationFailed)
"""What a list inside a project may answer."""
