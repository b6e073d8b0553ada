from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response, status

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    LIST_ERRORS,
    Forbidden,
    MalformedJson,
    NotAuthenticated,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.member.schemas import MemberPut, MemberRead, OwnershipTransfer
from annotation_platform.member.service import LastOwner, member_service
from annotation_platform.project.dependencies import ProjectOwner, ProjectReader

router = ApiRouter(prefix="/projects/{project_id}/members", tags=["members"])

UserIdPath = Annotated[str, Path(description="User id.")]


@router.get(
    "",
    operation_id="listMembers",
    response_model=Page[MemberRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_members(
    request: Request, access: ProjectReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The project's members and their roles."""
    members, cursor, total = await member_service.page(session, access=access, params=page)
    return page_response(request, members, cursor, total, settings.public_base_url)


@router.get(
    "/{user_id}",
    operation_id="getMember",
    response_model=MemberRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_member(user_id: UserIdPath, access: ProjectReader, session: SessionDep) -> MemberRead:
    """One member of the project and their role."""
    return await member_service.get(session, access=access, user_id=path_id(user_id, "member"))


@router.put(
    "/{user_id}",
    operation_id="putMember",
    response_model=MemberRead,
    responses={
        201: {"model": MemberRead, "description": "The user was added to the project."},
        **problem_responses(
            NotAuthenticated,
            Forbidden,
            NotFound,
            LastOwner,
            ValidationFailed,
            MalformedJson,
            UnsupportedMediaType,
        ),
    },
)
async def put_member(
    user_id: UserIdPath, body: MemberPut, access: ProjectReader, session: SessionDep, response: Response
) -> MemberRead:
    """Add a user to the project with a role, or change their role (200 on change, 201 when added).

    Managers assign `viewer`, `annotator` and `reviewer`; only owners grant or change `manager` and `owner`.
    """
    member, created = await member_service.put(session, access=access, user_id=path_id(user_id, "user"), role=body.role)
    if created:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"/api/v1/projects/{access.project.id}/members/{member.user_id}"
    return member


@router.delete(
    "/{user_id}",
    operation_id="deleteMember",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, LastOwner),
)
async def delete_member(user_id: UserIdPath, access: ProjectReader, user: CurrentUser, session: SessionDep) -> Response:
    """Remove a member. Anyone may leave; removing others follows the same rules as changing their role."""
    await member_service.remove(session, access=access, caller=user, user_id=path_id(user_id, "member"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/transfer-ownership",
    operation_id="transferOwnership",
    response_model=MemberRead,
    responses=problem_responses(
        NotAuthenticated, Forbidden, NotFound, ValidationFailed, MalformedJson, UnsupportedMediaType
    ),
)
async def transfer_ownership(
    body: OwnershipTransfer, access: ProjectOwner, user: CurrentUser, session: SessionDep
) -> MemberRead:
    """Make another member owner (owners only); the caller becomes manager. Returns the new owner's membership."""
    return await member_service.transfer_ownership(session, access=access, caller=user, user_id=body.user_id)
