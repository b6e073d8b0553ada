from __future__ import annotations

from fastapi import Request, Response, status

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    Forbidden,
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.project.dependencies import ProjectManager, ProjectOwner, ProjectReader
from annotation_platform.project.schemas import ProjectCreate, ProjectRead, ProjectUpdate
from annotation_platform.project.service import project_service

router = ApiRouter(prefix="/projects", tags=["projects"])


@router.get(
    "",
    operation_id="listProjects",
    response_model=Page[ProjectRead],
    responses=problem_responses(NotAuthenticated, InvalidCursor, ValidationFailed),
)
async def list_projects(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """Projects the caller is a member of (every project, for administrators), oldest first."""
    projects, cursor, total = await project_service.page(session, user=user, params=page)
    return page_response(request, projects, cursor, total, settings.public_base_url)


@router.post(
    "",
    operation_id="createProject",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses=problem_responses(NotAuthenticated, *BODY_ERRORS),
)
async def create_project(
    body: ProjectCreate, user: CurrentUser, session: SessionDep, response: Response
) -> ProjectRead:
    """Create a project; the caller becomes its owner."""
    project = await project_service.create(session, user=user, data=body)
    response.headers["Location"] = f"/api/v1/projects/{project.id}"
    return project


@router.get(
    "/{project_id}",
    operation_id="getProject",
    response_model=ProjectRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_project(access: ProjectReader) -> ProjectRead:
    """One project, with the caller's role in it."""
    return access.read()


@router.patch(
    "/{project_id}",
    operation_id="updateProject",
    response_model=ProjectRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, *BODY_ERRORS),
)
async def update_project(body: ProjectUpdate, access: ProjectManager, session: SessionDep) -> ProjectRead:
    """Change a project's name, description, type or settings (managers and owners)."""
    return await project_service.update(session, access=access, data=body)


@router.delete(
    "/{project_id}",
    operation_id="deleteProject",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound),
)
async def delete_project(access: ProjectOwner, session: SessionDep) -> Response:
    """Delete a project with all its containers, items and annotations (owners only)."""
    await project_service.delete(session, access=access)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
