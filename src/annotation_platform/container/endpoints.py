from __future__ import annotations

from fastapi import Request, Response, status

from annotation_platform.config import SettingsDep
from annotation_platform.container.dependencies import ContainerManager, ContainerReader
from annotation_platform.container.schemas import ContainerCreate, ContainerRead, ContainerUpdate, ItemSchemaVersionRead
from annotation_platform.container.service import ContainerNameTaken, InvalidItemSchema, container_service
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    LIST_ERRORS,
    Forbidden,
    NotAuthenticated,
    NotFound,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.project.dependencies import ProjectManager, ProjectReader

router = ApiRouter(tags=["containers"])

_BODY_ERRORS = (*BODY_ERRORS, InvalidItemSchema)


@router.get(
    "/projects/{project_id}/containers",
    operation_id="listContainers",
    response_model=Page[ContainerRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_containers(
    request: Request, access: ProjectReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The project's containers, oldest first."""
    containers, cursor, total = await container_service.page(session, access=access, params=page)
    return page_response(request, containers, cursor, total, settings.public_base_url)


@router.post(
    "/projects/{project_id}/containers",
    operation_id="createContainer",
    status_code=status.HTTP_201_CREATED,
    response_model=ContainerRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, ContainerNameTaken, *_BODY_ERRORS),
)
async def create_container(
    body: ContainerCreate, access: ProjectManager, session: SessionDep, response: Response
) -> ContainerRead:
    """Create a container (managers and owners)."""
    container = await container_service.create(session, access=access, data=body)
    response.headers["Location"] = f"/api/v1/containers/{container.id}"
    return container


@router.get(
    "/containers/{container_id}",
    operation_id="getContainer",
    response_model=ContainerRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_container(access: ContainerReader) -> ContainerRead:
    """One container, with its item count."""
    return access.read()


@router.patch(
    "/containers/{container_id}",
    operation_id="updateContainer",
    response_model=ContainerRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, ContainerNameTaken, *_BODY_ERRORS),
)
async def update_container(body: ContainerUpdate, access: ContainerManager, session: SessionDep) -> ContainerRead:
    """Rename a container or change its type or item schema (managers and owners).

    A new `item_schema` applies to items written from then on; existing items are not re-validated. The old
    schema is kept under its version number (`item_schema_version`, `GET .../item-schemas`).
    """
    return await container_service.update(session, access=access, data=body)


@router.delete(
    "/containers/{container_id}",
    operation_id="deleteContainer",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound),
)
async def delete_container(access: ContainerManager, session: SessionDep) -> Response:
    """Delete a container with all its items and annotations (managers and owners)."""
    await container_service.delete(session, access=access)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/containers/{container_id}/item-schemas",
    operation_id="listContainerItemSchemas",
    response_model=Page[ItemSchemaVersionRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_container_item_schemas(
    request: Request, access: ContainerReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """Every item schema the container has had, by version, oldest first; items name theirs in `schema_version`."""
    versions, cursor, total = await container_service.schema_versions(session, access=access, params=page)
    return page_response(request, versions, cursor, total, settings.public_base_url)
