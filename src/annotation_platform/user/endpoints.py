from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response, status

from annotation_platform.auth.dependencies import CurrentPrincipal, CurrentUser, Superuser
from annotation_platform.auth.schemas import SessionRead
from annotation_platform.auth.service import auth_service
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    AppError,
    Forbidden,
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.member.service import LastOwner
from annotation_platform.user.schemas import PersonalDataExport, UserAdminUpdate, UserRead, UserUpdateMe
from annotation_platform.user.service import (
    EmailTaken,
    InvalidPassword,
    UsernameTaken,
    WrongCurrentPassword,
    user_service,
)

router = ApiRouter(prefix="/users", tags=["users"])

_WRITE_ERRORS: tuple[type[AppError], ...] = (EmailTaken, UsernameTaken, InvalidPassword, *BODY_ERRORS)


@router.get("/me", operation_id="getMe", response_model=UserRead, responses=problem_responses(NotAuthenticated))
async def get_me(user: CurrentUser) -> UserRead:
    """The caller's own account."""
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    operation_id="updateMe",
    response_model=UserRead,
    responses=problem_responses(NotAuthenticated, WrongCurrentPassword, *_WRITE_ERRORS),
)
async def update_me(
    body: UserUpdateMe, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> UserRead:
    """Change the caller's username, email or password (the last two need `current_password`).

    A new password ends every other login session of the account; the one making the request stays."""
    updated = await user_service.update_me(
        session, settings, user=principal.user, data=body, current_session=principal.session_id
    )
    return UserRead.model_validate(updated)


@router.get(
    "/me/export",
    operation_id="exportMyData",
    response_model=PersonalDataExport,
    responses=problem_responses(NotAuthenticated),
)
async def export_my_data(principal: CurrentPrincipal, session: SessionDep) -> PersonalDataExport:
    """Everything the service keeps about you: account, memberships, sessions (with addresses and agents), API
    keys (never their secrets), linked login providers, and how many annotations and audit events name you."""
    return await user_service.export(session, user=principal.user, current_session=principal.session_id)


@router.get(
    "/me/sessions",
    operation_id="listMySessions",
    response_model=Page[SessionRead],
    responses=problem_responses(NotAuthenticated, InvalidCursor, ValidationFailed),
)
async def list_my_sessions(
    request: Request, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The caller's live login sessions, oldest first: when and from where (IP, user agent) each started, when it
    was last used, and which one is making this request (`current`)."""
    sessions, cursor, total = await auth_service.sessions(session, principal=principal, params=page)
    return page_response(request, sessions, cursor, total, settings.public_base_url)


@router.delete(
    "/me/sessions/{session_id}",
    operation_id="revokeMySession",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def revoke_my_session(
    session_id: Annotated[str, Path(description="Session id.")], principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """End one of the caller's sessions: its token answers 401 from the next request on."""
    await auth_service.revoke(session, principal=principal, session_id=path_id(session_id, "session"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "",
    operation_id="listUsers",
    response_model=Page[UserRead],
    responses=problem_responses(NotAuthenticated, Forbidden, InvalidCursor, ValidationFailed),
)
async def list_users(
    request: Request, _admin: Superuser, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """Every account, oldest first (administrators only)."""
    users, cursor, total = await user_service.page(session, page)
    return page_response(request, [UserRead.model_validate(u) for u in users], cursor, total, settings.public_base_url)


@router.get(
    "/{user_id}",
    operation_id="getUser",
    response_model=UserRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound),
)
async def get_user(user_id: str, _admin: Superuser, session: SessionDep) -> UserRead:
    """One account (administrators only)."""
    return UserRead.model_validate(await user_service.get(session, path_id(user_id, "user")))


@router.patch(
    "/{user_id}",
    operation_id="updateUser",
    response_model=UserRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, *_WRITE_ERRORS),
)
async def update_user(
    user_id: str, body: UserAdminUpdate, _admin: Superuser, session: SessionDep, settings: SettingsDep
) -> UserRead:
    """Change any account, including `is_active`, `is_verified` and `is_superuser` (administrators only)."""
    user = await user_service.admin_update(session, settings, user_id=path_id(user_id, "user"), data=body)
    return UserRead.model_validate(user)


@router.delete(
    "/{user_id}",
    operation_id="deleteUser",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, LastOwner),
)
async def delete_user(user_id: str, _admin: Superuser, session: SessionDep) -> Response:
    """Delete an account. Its annotations stay, detached from the person (administrators only)."""
    await user_service.delete(session, user_id=path_id(user_id, "user"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
