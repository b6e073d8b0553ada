from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from annotation_platform.auth.dependencies import CurrentUser, Superuser
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
from annotation_platform.core.routing import ApiRoute
from annotation_platform.member.service import LastOwner
from annotation_platform.user.schemas import UserAdminUpdate, UserRead, UserUpdateMe
from annotation_platform.user.service import (
    EmailTaken,
    InvalidPassword,
    UsernameTaken,
    WrongCurrentPassword,
    user_service,
)

router = APIRouter(prefix="/users", tags=["users"], route_class=ApiRoute)

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
async def update_me(body: UserUpdateMe, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> UserRead:
    """Change the caller's username, email or password (the last two need `current_password`)."""
    return UserRead.model_validate(await user_service.update_me(session, settings, user=user, data=body))


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
