"""Typed dependencies that say who is calling: `CurrentUser`, `CurrentPrincipal`, `Superuser`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from annotation_platform.auth.service import Principal, auth_service
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import Forbidden
from annotation_platform.models import User

LOGIN_PATH = "/api/v1/auth/jwt/login"

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=LOGIN_PATH,
    scheme_name="bearer",
    description="`Authorization: Bearer <access_token>`, the token from `POST /api/v1/auth/jwt/login`.",
    auto_error=False,
)


async def current_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(bearer_scheme)],
) -> Principal:
    principal = await auth_service.authenticate(session, settings, token=token)
    request.state.user_id = principal.user.id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden("This operation is for administrators.")
    return user


Superuser = Annotated[User, Depends(current_superuser)]
