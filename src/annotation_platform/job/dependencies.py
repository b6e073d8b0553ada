"""`OwnJob`: the job in the path, if the caller created it (404 otherwise)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.job.service import job_service
from annotation_platform.models import Job


async def own_job(job_id: Annotated[str, Path(description="Job id.")], user: CurrentUser, session: SessionDep) -> Job:
    return await job_service.get(session, job_id=path_id(job_id, "job"), user=user)


OwnJob = Annotated[Job, Depends(own_job)]
