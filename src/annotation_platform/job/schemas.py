from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from annotation_platform.core.schemas import Id, ReadModel
from annotation_platform.models import Job


class Progress(BaseModel):
    done: int = Field(description="Rows (or units) processed so far.")
    total: int = Field(description="Rows expected; an estimate while the job runs, exact once it ends; 0 = unknown.")


class JobRead(ReadModel):
    id: Id
    kind: str = Field(description="`import`, `export`, `backup`, `agreement`, `snapshot` or `restore`.")
    status: str = Field(description="`queued`, `running`, `succeeded`, `failed` or `cancelled`.")
    project_id: Id | None
    progress: Progress
    params: dict[str, Any]
    result: dict[str, Any] | None
    error_count: int = Field(description="Row errors stored; `GET /jobs/{id}/errors` lists them.")
    error_message: str | None = Field(description="Why the job failed, when it did.")
    cancel_requested: bool
    attempts: int = Field(description="How many times a worker started it.")
    created_by: Id | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobRead:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            project_id=job.project_id,
            progress=Progress(done=job.progress_done, total=job.progress_total),
            params=job.params,
            result=job.result,
            error_count=job.error_count,
            error_message=job.error_message,
            cancel_requested=job.cancel_requested,
            attempts=job.attempts,
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobErrorRead(ReadModel):
    seq: int
    row: int | None = Field(description="1-based data row (the header is not counted); null for file-wide problems.")
    column: str | None
    message: str
