from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response, status

from annotation_platform.auth.dependencies import Superuser
from annotation_platform.backup.schemas import BackupRead
from annotation_platform.backup.service import backup_service
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    Forbidden,
    InvalidCursor,
    NotAuthenticated,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.job.schemas import JobRead
from annotation_platform.job.service import IdempotencyKeyReused

router = ApiRouter(prefix="/admin/backups", tags=["backups"])


@router.get(
    "",
    operation_id="listBackups",
    response_model=Page[BackupRead],
    responses=problem_responses(NotAuthenticated, Forbidden, InvalidCursor, ValidationFailed),
)
async def list_backups(
    request: Request, _user: Superuser, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The database backups kept (superusers), oldest first, with their size and SHA-256."""
    backups, cursor, total = await backup_service.page(session, params=page)
    return page_response(request, backups, cursor, total, settings.public_base_url)


@router.post(
    "",
    operation_id="createBackup",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(NotAuthenticated, Forbidden, ValidationFailed, IdempotencyKeyReused),
)
async def create_backup(
    user: Superuser,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description="Repeat it to get the same job back.")
    ] = None,
) -> JobRead:
    """Back up the database now (superusers): answers 202 with the queued job; follow it at `Location`.

    Its result names the backup (`backup_id`, `filename`, `size_bytes`, `sha256`); older backups beyond
    BACKUP_RETENTION_COUNT are deleted when it succeeds."""
    job, _created = await backup_service.request(session, user=user, idempotency_key=idempotency_key)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobRead.of(job)
