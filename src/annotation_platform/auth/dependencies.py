"""Typed dependencies that say who is calling: `CurrentUser`, `CurrentPrincipal`, `Superuser`."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.api_key.service import api_key_cache_key, api_key_service
from annotation_platform.audit.context import AuditContext, bind_context
from annotation_platform.auth.service import Principal, auth_service, hash_token, session_cache_key
from annotation_platform.config import settings_from
from annotation_platform.core.clients import client_ip
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import Forbidden, NotAuthenticated
from annotation_platform.core.rate_limit import rate_limiter_of
from annotation_platform.models import User

LOGIN_PATH = "/api/v1/auth/jwt/login"
# Reads may be answered from the cache; writes load (and lock) what they change from the database.
READ_METHODS = frozenset({"GET", "HEAD"})

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=LOGIN_PATH,
    scheme_name="bearer",
    description="`Authorization: Bearer <access_token>`, the token from `POST /api/v1/auth/jwt/login`.",
    auto_error=False,
)

api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="`X-API-Key: <key>`, a key from `POST /api/v1/api-keys` (scopes, expiry and IP ranges apply).",
    auto_error=False,
)


# The user of each credential (by its hash) this process authenticated: a credential never changes hands, so
# this only tells `cached_credential` which cache entries a request will read. Authentication still checks it.
_USER_OF_CREDENTIAL_SIZE = 100_000
_user_of_credential: dict[str, uuid.UUID] = {}


def _credential(request: Request) -> tuple[str, bool] | None:
    """The hash of the request's credential, and whether it is a bearer token (else an API key); computed once
    a request."""
    if _CREDENTIAL in request.scope:
        known: tuple[str, bool] | None = request.scope[_CREDENTIAL]
        return known
    token, api_key = request_credentials(request)
    if token:
        credential: tuple[str, bool] | None = (hash_token(token), True)
    else:
        credential = (hash_token(api_key), False) if api_key else None
    request.scope[_CREDENTIAL] = credential
    return credential


_CREDENTIAL = "annotation_platform.credential"


def cached_credential(request: Request) -> tuple[str, uuid.UUID | None] | None:
    """The cache key of the caller a read will look up (bearer token, else API key), and their user id when
    this process has seen the credential before; None without a credential."""
    credential = _credential(request)
    if credential is None:
        return None
    credential_hash, is_bearer = credential
    key = session_cache_key(credential_hash) if is_bearer else api_key_cache_key(credential_hash)
    return key, _user_of_credential.get(credential_hash)


BearerToken = Annotated[str | None, Depends(bearer_scheme)]
ApiKey = Annotated[str | None, Depends(api_key_scheme)]


def request_credentials(request: Request) -> tuple[str | None, str | None]:
    """The bearer token and the API key of a request, read as `BearerToken` and `ApiKey` read them. For the hot
    list routes: the two schemes are two more dependencies for FastAPI to resolve (20 to 40 microseconds each),
    so those routes read the headers here and name the schemes in their OpenAPI operation (`CREDENTIALS`)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return (token if scheme.lower() == "bearer" and token else None), request.headers.get("x-api-key") or None


# `openapi_extra` of a route that reads `request_credentials` itself: the security its operation declares.
CREDENTIALS: dict[str, Any] = {"security": [{bearer_scheme.scheme_name: []}, {api_key_scheme.scheme_name: []}]}


async def current_principal(request: Request, session: SessionDep, token: BearerToken, api_key: ApiKey) -> Principal:
    return await authenticate_request(request, session, token, api_key)


async def authenticate_request(
    request: Request, session: AsyncSession, token: str | None, api_key: str | None
) -> Principal:
    """The caller, from a bearer token or else an API key. Requests that do not authenticate count against
    RATE_LIMIT_ANONYMOUS per client address, so guessing credentials is slowed down (429 past the limit).
    `current_principal` as a dependency; the dependencies of hot list routes call it directly (one dependency
    for the whole access check: FastAPI's resolution costs 20 to 40 microseconds a dependency)."""
    limiter = rate_limiter_of(request)
    settings = settings_from(request)
    try:
        if token or not api_key:
            principal = await auth_service.authenticate(
                session, settings, token=token, cacheable=request.method in READ_METHODS
            )
        else:
            principal = await api_key_service.authenticate(
                session,
                settings,
                key=api_key,
                method=request.method,
                ip=client_ip(request),
                cacheable=request.method in READ_METHODS,
            )
    except NotAuthenticated:
        await limiter.hit(request, limiter.anonymous, "anonymous", client_ip(request) or "unknown")
        raise
    bind_context(
        session,
        functools.partial(AuditContext.of_request, request, user_id=principal.user.id, api_key_id=principal.api_key_id),
    )
    if principal.api_key_id is not None:
        await limiter.hit(request, limiter.default, "key", str(principal.api_key_id))
    else:
        await limiter.hit(request, limiter.default, "user", str(principal.user.id))
    request.state.user_id = principal.user.id
    credential = _credential(request)
    if credential is not None and credential[0] not in _user_of_credential:
        if len(_user_of_credential) >= _USER_OF_CREDENTIAL_SIZE:
            _user_of_credential.clear()
        _user_of_credential[credential[0]] = principal.user.id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_superuser(user: CurrentUser) -> User:
    if not user.acts_as_superuser:
        raise Forbidden("This operation is for administrators.")
    return user


Superuser = Annotated[User, Depends(current_superuser)]
