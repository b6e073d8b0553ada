from __future__ import annotations

from typing import Annotated

from fastapi import File, Form, Header, Response, UploadFile, status

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.container.dependencies import ContainerManager
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import BODY_ERRORS, Forbidden, NotAuthenticated, NotFound, problem_responses
from annotation_platform.core.routing import ApiRouter
from annotation_platform.data_import.schemas import ImportFormat, ImportOptions, OnError
from annotation_platform.data_import.service import (
    AnnotatorUnknown,
    EncodingUnknown,
    MappingInvalid,
    UploadTooLarge,
    import_service,
)
from annotation_platform.job.schemas import JobRead
from annotation_platform.job.service import IdempotencyKeyReused

router = ApiRouter(tags=["imports"])


@router.post(
    "/containers/{container_id}/imports",
    operation_id="createImport",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(
        NotAuthenticated,
        Forbidden,
        NotFound,
        *BODY_ERRORS,
        MappingInvalid,
        EncodingUnknown,
        AnnotatorUnknown,
        UploadTooLarge,
        IdempotencyKeyReused,
    ),
)
async def create_import(
    access: ContainerManager,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="The CSV, JSON (array of objects) or JSON Lines file.")],
    format: Annotated[ImportFormat, Form(description="`csv`, `json` or `jsonl`.")],
    mapping: Annotated[
        str | None, Form(description="JSON object, target -> source column; a chat room defaults to the chat preset.")
    ] = None,
    dry_run: Annotated[bool, Form(description="Check and count, write nothing.")] = False,
    annotator: Annotated[
        str | None, Form(description="Username or email of the project member who authors the annotations.")
    ] = None,
    encoding: Annotated[str, Form(description="Text encoding of the file (a BOM is tolerated).")] = "utf-8",
    on_error: Annotated[OnError, Form(description="`abort`: all or nothing; `skip`: write the good rows.")] = "abort",
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description="Repeat it to get the same job back.")
    ] = None,
) -> JobRead:
    """Import a file into the container (managers and owners): answers 202 with the queued job.

    Items are matched by external id, so a second annotator's file of the same room adds only their annotations,
    and importing the same file again changes nothing. Follow the job at `Location`.
    """
    options = ImportOptions(
        format=format, mapping=mapping, dry_run=dry_run, annotator=annotator, encoding=encoding, on_error=on_error
    )
    job, _created = await import_service.create(
        session,
        access=access,
        user=user,
        settings=settings,
        upload=file.file,
        filename=file.filename,
        options=options,
        idempotency_key=idempotency_key,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobRead.of(job)
