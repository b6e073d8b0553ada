from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Header, Path, Query, Request, Response, status

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
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import Page, PageParamsDep, next_page_url, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.data_export.service import ContainerNotInProject
from annotation_platform.job.schemas import JobRead
from annotation_platform.job.service import IdempotencyKeyReused
from annotation_platform.project.dependencies import ProjectManager, ProjectReader
from annotation_platform.version.schemas import VersionCreate, VersionDiff, VersionRead, VersionRestore
from annotation_platform.version.service import VersionCorrupt, VersionNotReady, VersionTagTaken, version_service

router = ApiRouter(prefix="/projects/{project_id}/versions", tags=["versions"])

VersionIdPath = Annotated[str, Path(description="Version id.")]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=255, description="Repeat it to get the same job back.")
]


def _accepted(response: Response, job_id: object) -> None:
    response.headers["Location"] = f"/api/v1/jobs/{job_id}"


@router.post(
    "",
    operation_id="createProjectVersion",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(
        NotAuthenticated,
        Forbidden,
        NotFound,
        *BODY_ERRORS,
        ContainerNotInProject,
        VersionTagTaken,
        IdempotencyKeyReused,
    ),
)
async def create_version(
    access: ProjectManager,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    body: VersionCreate,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    """Take a named snapshot of the project, or of some of its containers (managers and owners).

    Answers 202 with the queued snapshot job; the version is listed at once, with the job's status.
    """
    job = await version_service.create(session, access=access, user=user, data=body, idempotency_key=idempotency_key)
    _accepted(response, job.id)
    return JobRead.of(job)


@router.get(
    "",
    operation_id="listProjectVersions",
    response_model=Page[VersionRead],
    responses=problem_responses(NotAuthenticated, NotFound, InvalidCursor, ValidationFailed),
)
async def list_versions(
    request: Request, access: ProjectReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The project's versions, oldest first; metadata only, no snapshot file is read."""
    versions, cursor, total = await version_service.page(session, access=access, params=page)
    return page_response(request, versions, cursor, total, settings.public_base_url)


@router.get(
    "/{version_id}",
    operation_id="getProjectVersion",
    response_model=VersionRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_version(access: ProjectReader, session: SessionDep, version_id: VersionIdPath) -> VersionRead:
    """One version: tag, message, who and when, its job's status, and once taken its counts, size and SHA-256."""
    return await version_service.get(session, access=access, version_id=path_id(version_id, "version"))


@router.get(
    "/{version_id}/diff",
    operation_id="listVersionChanges",
    response_model=VersionDiff,
    responses=problem_responses(
        NotAuthenticated, NotFound, InvalidCursor, ValidationFailed, VersionNotReady, VersionCorrupt
    ),
)
async def diff_versions(
    request: Request,
    access: ProjectReader,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    version_id: VersionIdPath,
    against: Annotated[
        str, Query(description="The version to compare with: of this project, or of another one you may read.")
    ],
    page: PageParamsDep,
) -> Response:
    """What changed from `against` to this version: containers, items and annotations added, removed or changed.

    `summary` counts everything (annotations also per annotator and type); `items` is one page of the changes.
    """
    diff = await version_service.diff(
        session,
        access=access,
        user=user,
        version_id=path_id(version_id, "version"),
        against_id=path_id(against, "version"),
        params=page,
        settings=settings,
    )
    headers = {}
    if diff.next_cursor is not None:
        headers["Link"] = f'<{next_page_url(request, diff.next_cursor, settings.public_base_url)}>; rel="next"'
    body = diff.model_dump(mode="json", exclude_none=False)
    if diff.total is None:
        body.pop("total")
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@router.post(
    "/{version_id}/restore",
    operation_id="restoreProjectVersion",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(
        NotAuthenticated, Forbidden, NotFound, *BODY_ERRORS, VersionNotReady, IdempotencyKeyReused
    ),
)
async def restore_version(
    access: ProjectManager,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    version_id: VersionIdPath,
    body: VersionRestore | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    """Restore the version into a NEW project, owned by the caller (managers and owners); this one is untouched.

    Answers 202 with the queued restore job; its `result.project_id` names the new project once it succeeded.
    """
    job = await version_service.restore(
        session,
        access=access,
        user=user,
        version_id=path_id(version_id, "version"),
        data=body or VersionRestore(),
        idempotency_key=idempotency_key,
    )
    _accepted(response, job.id)
    return JobRead.of(job)
