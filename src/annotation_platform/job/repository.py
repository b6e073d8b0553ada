"""SQL for jobs: the caller's jobs in creation order, row errors by sequence, claims and the reaper's sweep."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import Job, JobError, JobStatus


class JobRepository:
    keyset = Keyset(columns=(Job.id,), kinds=(uuid.UUID,))
    errors_keyset = Keyset(columns=(JobError.seq,), kinds=(int,))

    async def get(self, session: AsyncSession, job_id: uuid.UUID) -> Job | None:
        return await session.get(Job, job_id, populate_existing=True)

    async def by_idempotency_key(self, session: AsyncSession, user_id: uuid.UUID, key: str) -> Job | None:
        statement = select(Job).where(Job.created_by == user_id, Job.idempotency_key == key)
        return (await session.execute(statement)).scalar_one_or_none()

    async def add(self, session: AsyncSession, job: Job) -> None:
        session.add(job)
        await session.flush()

    async def page(self, session: AsyncSession, user_id: uuid.UUID, params: PageParams) -> tuple[list[Job], str | None]:
        statement = select(Job).where(Job.created_by == user_id)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession, user_id: uuid.UUID) -> int:
        return int((await session.execute(select(func.count()).where(Job.created_by == user_id))).scalar_one())

    async def errors_page(
        self, session: AsyncSession, job_id: uuid.UUID, params: PageParams
    ) -> tuple[list[JobError], str | None]:
        statement = select(JobError).where(JobError.job_id == job_id)
        rows, cursor = await fetch_page(session, statement, self.errors_keyset, params, lambda r: (r[0].seq,))
        return [row[0] for row in rows], cursor

    async def add_errors(self, session: AsyncSession, job_id: uuid.UUID, errors: Sequence[dict[str, Any]]) -> None:
        if errors:
            await session.execute(insert(JobError), [{"job_id": job_id, **error} for error in errors])

    async def delete_errors(self, session: AsyncSession, job_id: uuid.UUID) -> None:
        await session.execute(delete(JobError).where(JobError.job_id == job_id))

    async def transition(
        self, session: AsyncSession, job_id: uuid.UUID, from_statuses: Sequence[str], **values: Any
    ) -> bool:
        """Moves the job on only from one of `from_statuses`: concurrent workers and clients cannot both win."""
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.status.in_(list(from_statuses)))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def set_values(self, session: AsyncSession, job_id: uuid.UUID, **values: Any) -> None:
        statement = update(Job).where(Job.id == job_id).values(**values).execution_options(synchronize_session=False)
        await session.execute(statement)

    async def cancel_requested(self, session: AsyncSession, job_id: uuid.UUID) -> bool:
        statement = select(Job.cancel_requested).where(Job.id == job_id)
        return bool((await session.execute(statement)).scalar_one_or_none())

    async def fail_silent_running(
        self, session: AsyncSession, silent_since: datetime, now: datetime, message: str
    ) -> list[uuid.UUID]:
        statement = (
            update(Job)
            .where(
                Job.status == JobStatus.running.value, func.coalesce(Job.heartbeat_at, Job.started_at) < silent_since
            )
            .values(status=JobStatus.failed.value, error_message=message, finished_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
        return list((await session.execute(statement)).scalars())

    async def mark_resent(
        self, session: AsyncSession, sent_before: datetime, now: datetime
    ) -> list[tuple[uuid.UUID, str]]:
        """Queued jobs whose task was last sent before `sent_before`: marked sent now; their (id, kind)."""
        statement = (
            update(Job)
            .where(Job.status == JobStatus.queued.value, func.coalesce(Job.heartbeat_at, Job.created_at) < sent_before)
            .values(heartbeat_at=now)
            .returning(Job.id, Job.kind)
            .execution_options(synchronize_session=False)
        )
        return [(row.id, row.kind) for row in await session.execute(statement)]

    async def active_of(self, session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `job_ids` that are queued or running."""
        statement = select(Job.id).where(
            Job.id.in_(list(job_ids)), Job.status.in_([JobStatus.queued.value, JobStatus.running.value])
        )
        return set((await session.execute(statement)).scalars())


job_repository = JobRepository()
