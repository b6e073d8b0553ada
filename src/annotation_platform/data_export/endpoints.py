from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import BODY_ERRORS, Forbidden, NotAuthenticated, NotFound, problem_responses
from annotation_platform.core.field_crypto import EncryptionKeyUnavailable
from annotation_platform.core.routing import ApiRouter
from annotation_platform.data_export.schemas import MEDIA_TYPES, ExportCreate
from annotation_platform.data_export.service import (
    ContainerNotInProject,
    ExportExpired,
    ExportNotReady,
    export_service,
)
from annotation_platform.data_export.storage import read_chunks
from annotation_platform.job.dependencies import OwnJob
from annotation_platform.job.schemas import JobRead
from annotation_platform.job.service import IdempotencyKeyReused
from annotation_platform.project.dependencies import ProjectManager

router = ApiRouter(tags=["exports"])


@router.post(
    "/projects/{project_id}/exports",
    operation_id="createExport",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(
        NotAuthenticated, Forbidden, NotFound, *BODY_ERRORS, ContainerNotInProject, IdempotencyKeyReused
    ),
)
async def create_export(
    access: ProjectManager,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    body: ExportCreate,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description="Repeat it to get the same job back.")
    ] = None,
) -> JobRead:
    """Export the project's items and annotations (managers and owners): answers 202 with the queued job.

    When the job has succeeded, `GET /jobs/{id}/download` serves the file until it expires.
    """
    job, _created = await export_service.create(
        session, access=access, user=user, data=body, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobRead.of(job)


@router.get(
    "/jobs/{job_id}/download",
    operation_id="downloadExport",
    response_class=Response,
    responses={
        200: {
            "description": "The export file, as an attachment.",
            "content": {media_type.split(";")[0]: {} for media_type in MEDIA_TYPES.values()},
        },
        **problem_responses(NotAuthenticated, NotFound, ExportNotReady, ExportExpired, EncryptionKeyUnavailable),
    },
)
async def download_export(job: OwnJob, settings: SettingsDep, request: Request) -> Response:
    """The file of one of the caller's succeeded exports (409 while it runs, 410 once it has expired)."""
    found = export_service.download(job=job, settings=settings)
    # The project's data: kept by no shared cache, and by the client only as the file it saves.
    headers = {"Content-Disposition": f'attachment; filename="{found.filename}"', "Cache-Control": "private, no-store"}
    sealed = export_service.sealed_chunks(found, job=job, key_ring=request.app.state.key_ring)
    if sealed is not None:
        return StreamingResponse(sealed, media_type=found.media_type, headers=headers)
    path = found.storage.path(found.name)
    if path is not None:
        return FileResponse(path, media_type=found.media_type, headers=headers)
    return StreamingResponse(read_chunks(found.storage, found.name), media_type=found.media_type, headers=headers)
