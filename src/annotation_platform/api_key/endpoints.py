from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response, status

from annotation_platform.api_key.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from annotation_platform.api_key.service import (
    ExpiryInThePast,
    LoginSessionRequired,
    ScopeNotHeld,
    api_key_service,
)
from annotation_platform.auth.dependencies import CurrentPrincipal, CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import BODY_ERRORS, LIST_ERRORS, NotAuthenticated, NotFound, problem_responses
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter

router = ApiRouter(prefix="/api-keys", tags=["api-keys"])

KeyIdPath = Annotated[str, Path(description="API key id.")]


@router.get("", operation_id="listApiKeys", response_model=Page[ApiKeyRead], responses=problem_responses(*LIST_ERRORS))
async def list_api_keys(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The caller's API keys, oldest first (never their secrets)."""
    keys, cursor, total = await api_key_service.page(session, user=user, params=page)
    return page_response(request, keys, cursor, total, settings.public_base_url)


@router.post(
    "",
    operation_id="createApiKey",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(NotAuthenticated, LoginSessionRequired, ScopeNotHeld, ExpiryInThePast, *BODY_ERRORS),
)
async def create_api_key(
    body: ApiKeyCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> ApiKeyCreated:
    """Create a key for yourself (with a login session, not with another key). The answer holds the secret,
    `key`, this one time only; it is stored hashed and cannot be read again.

    Scopes: `read` (GET), `write` (every method), `admin` (a superuser's administration; superusers only).
    A key acts as you and never beyond your own rights."""
    created = await api_key_service.create(session, principal=principal, data=body)
    response.headers["Location"] = f"/api/v1/api-keys/{created.id}"
    return created


@router.get(
    "/{key_id}",
    operation_id="getApiKey",
    response_model=ApiKeyRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_api_key(key_id: KeyIdPath, user: CurrentUser, session: SessionDep) -> ApiKeyRead:
    """One of the caller's keys (without its secret), with when it was last used."""
    return ApiKeyRead.model_validate(await api_key_service.get(session, user=user, key_id=path_id(key_id, "API key")))


@router.delete(
    "/{key_id}",
    operation_id="revokeApiKey",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def revoke_api_key(key_id: KeyIdPath, user: CurrentUser, session: SessionDep) -> Response:
    """Revoke one of the caller's keys: it stops working at once."""
    await api_key_service.revoke(session, user=user, key_id=path_id(key_id, "API key"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
