"""Job rules: who sees a job, cancel and retry, and the state changes workers make while they run one.

A job is created in the request's transaction and its task is sent only after that commit
(`enqueue_after_commit`), so a worker never looks for a job that is not there yet. Workers move a job on
with conditional updates (`queued -> running` only from `queued`), so a duplicated message runs nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from annotation_platform.config import Settings
from annotation_platform.core.errors import AppError, Conflict, NotFound
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.queue import enqueue_after_commit
from annotation_platform.core.types import utcnow
from annotation_platform.job.repository import job_repository
from annotation_platform.job.schemas import JobErrorRead, JobRead, Progress
from annotation_platform.models import Job, JobKind, JobStatus, User
from annotation_platform.models.job import FINISHED_STATUSES
from annotation_platform.webhook.events import JOB_FINISHED, emit

logger = logging.getLogger(__name__)

TASK_OF_KIND = {
    JobKind.import_.value: "imports.run",
    JobKind.export.value: "exports.run",
    JobKind.backup.value: "backups.run",
    JobKind.agreement.value: "agreement.run",
    JobKind.snapshot.value: "versions.snapshot",
    JobKind.restore.value: "versions.restore",
}
WORKER_LOST = (
    "worker lost: no heartbeat for {seconds} s (the worker stopped or was killed); nothing was written. Retry."
)
MAX_STORED_ERRORS = 10_000
EVENTS_POLL_SECONDS = 0.5


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"
    title = "Job already finished"
    description = "Only queued or running jobs can be cancelled."


class JobNotRetryable(Conflict):
    code = "job_not_retryable"
    title = "Job cannot be retried"
    description = "Only failed or cancelled jobs can be retried."


class IdempotencyKeyReused(AppError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key already used for another request"
    description = (
        "The key was first sent with another kind of job or another target (project, container, version). "
        "Send a new key with each new request."
    )


def cancel_marker(settings: Settings, job_id: uuid.UUID) -> Path:
    return (settings.data_dir / "jobs" / f"{job_id}.cancel").resolve()


def request_cancel_by_file(settings: Settings, job_id: uuid.UUID) -> None:
    path = cancel_marker(settings, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def progress_marker(settings: Settings, job_id: uuid.UUID) -> Path:
    return (settings.data_dir / "jobs" / f"{job_id}.progress").resolve()


def report_progress_by_file(settings: Settings, job_id: uuid.UUID, *, done: int, total: int) -> None:
    """On SQLite a running import holds the only write lock, so its progress goes beside the database: a file
    replaced whole each time, so a reader never sees half of it."""
    path = progress_marker(settings, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{done} {total}")
    partial.replace(path)


def _progress_by_file(settings: Settings, job_id: uuid.UUID) -> Progress | None:
    try:
        done, total = (int(part) for part in progress_marker(settings, job_id).read_text().split())
    except (OSError, ValueError):
        return None
    return Progress(done=done, total=total)


class JobService:
    async def create(
        self,
        session: AsyncSession,
        *,
        kind: JobKind,
        user: User,
        params: dict[str, Any],
        project_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        job_id: uuid.UUID | None = None,
    ) -> tuple[Job, bool]:
        """The new job (queued, its task sent after commit) and True; or the caller's job with this key and False."""
        if idempotency_key is not None:
            existing = await self.find_idempotent(
                session, user=user, key=idempotency_key, kind=kind, project_id=project_id
            )
            if existing is not None:
                return existing, False
        job = Job(
            kind=kind.value,
            status=JobStatus.queued.value,
            project_id=project_id,
            params=params,
            created_by=user.id,
            idempotency_key=idempotency_key,
            created_at=utcnow(),
        )
        if job_id is not None:
            job.id = job_id
        await job_repository.add(session, job)
        enqueue_after_commit(session, TASK_OF_KIND[kind.value], str(job.id))
        return job, True

    async def find_idempotent(
        self,
        session: AsyncSession,
        *,
        user: User,
        key: str,
        kind: JobKind,
        project_id: uuid.UUID | None,
        target: dict[str, str] | None = None,
    ) -> Job | None:
        """The caller's job with this key, if it was asked for the same kind of job on the same project (and the
        same `target` parameters, e.g. a container); a key reused for something else answers 422."""
        existing = await job_repository.by_idempotency_key(session, user.id, key)
        if existing is None:
            return None
        same_target = all(existing.params.get(name) == value for name, value in (target or {}).items())
        if existing.kind != kind.value or existing.project_id != project_id or not same_target:
            raise IdempotencyKeyReused(
                f"This Idempotency-Key was used for job {existing.id} ({existing.kind}); "
                "use a new key for a new request."
            )
        return existing

    async def get(self, session: AsyncSession, *, job_id: uuid.UUID, user: User) -> Job:
        """The caller's job; others' jobs do not exist for them (404)."""
        job = await job_repository.get(session, job_id)
        if job is None or job.created_by != user.id:
            raise NotFound("No such job.")
        return job

    async def page(
        self, session: AsyncSession, *, user: User, params: PageParams, settings: Settings
    ) -> tuple[list[JobRead], str | None, int | None]:
        jobs, cursor = await job_repository.page(session, user.id, params)
        total = await job_repository.count(session, user.id) if params.include_total else None
        return [self.read(job, settings=settings) for job in jobs], cursor, total

    async def errors(
        self, session: AsyncSession, *, job: Job, params: PageParams
    ) -> tuple[list[JobErrorRead], str | None, int | None]:
        errors, cursor = await job_repository.errors_page(session, job.id, params)
        total = job.error_count if params.include_total else None
        return [JobErrorRead.model_validate(error) for error in errors], cursor, total

    async def cancel(self, session: AsyncSession, *, job: Job, settings: Settings) -> Job:
        """Queued: cancelled at once. Running: the worker is asked to stop and rolls back what it wrote.

        On SQLite a running import holds the database's only write lock until it ends, so the request is passed
        as a marker file in DATA_DIR instead of a column the worker could only see after finishing.
        """
        now = utcnow()
        if settings.is_sqlite and job.status == JobStatus.running.value:
            await run_in_threadpool(request_cancel_by_file, settings, job.id)
            job.cancel_requested = True
            return job
        if await job_repository.transition(
            session, job.id, [JobStatus.queued.value], status=JobStatus.cancelled.value, finished_at=now
        ):
            cancelled = await self._reload(session, job.id)
            await self._notify_finished(session, cancelled)
            return cancelled
        if await job_repository.transition(session, job.id, [JobStatus.running.value], cancel_requested=True):
            return await self._reload(session, job.id)
        raise JobNotCancellable(f"The job is {job.status}.")

    async def retry(self, session: AsyncSession, *, job: Job, settings: Settings) -> Job:
        """A failed or cancelled job queued again, as it was first asked for; its old row errors are dropped."""
        moved = await job_repository.transition(
            session,
            job.id,
            [JobStatus.failed.value, JobStatus.cancelled.value],
            status=JobStatus.queued.value,
            cancel_requested=False,
            progress_done=0,
            progress_total=0,
            error_count=0,
            error_message=None,
            result=None,
            started_at=None,
            finished_at=None,
            heartbeat_at=utcnow(),
        )
        if not moved:
            raise JobNotRetryable(f"The job is {job.status}.")
        await job_repository.delete_errors(session, job.id)
        self.forget_cancel_request(job_id=job.id, settings=settings)
        enqueue_after_commit(session, TASK_OF_KIND[job.kind], str(job.id))
        return await self._reload(session, job.id)

    async def events(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        job_id: uuid.UUID,
        settings: Settings,
        poll_seconds: float = EVENTS_POLL_SECONDS,
    ) -> AsyncIterator[tuple[str, JobRead]]:
        """`("progress", job)` whenever status, progress or error count change, then `("end", job)` once it ends.

        Each poll reads the row in a session of its own that is closed before waiting, so a stream holds no
        connection or transaction between polls. A job that disappears (its project deleted) ends the stream.
        """
        last: tuple[str, int, int, int] | None = None
        while True:
            async with session_factory() as session:
                job = await job_repository.get(session, job_id)
                current = self.read(job, settings=settings) if job is not None else None
            if current is None:
                return
            state = (current.status, current.progress.done, current.progress.total, current.error_count)
            if state != last:
                last = state
                yield "progress", current
            if current.status in FINISHED_STATUSES:
                yield "end", current
                return
            await asyncio.sleep(poll_seconds)

    async def _reload(self, session: AsyncSession, job_id: uuid.UUID) -> Job:
        job = await job_repository.get(session, job_id)
        if job is None:
            raise NotFound("No such job.")
        return job

    # --- what workers do -----------------------------------------------------------------------------------------

    async def claim(self, session: AsyncSession, *, job_id: uuid.UUID) -> Job | None:
        """`queued -> running` for this worker, or None when the job is gone, cancelled or taken already."""
        job = await job_repository.get(session, job_id)
        if job is None:
            return None
        now = utcnow()
        claimed = await job_repository.transition(
            session,
            job_id,
            [JobStatus.queued.value],
            status=JobStatus.running.value,
            started_at=now,
            heartbeat_at=now,
            attempts=job.attempts + 1,
        )
        return await self._reload(session, job_id) if claimed else None

    async def report_progress(self, session: AsyncSession, *, job_id: uuid.UUID, done: int, total: int) -> None:
        await job_repository.set_values(
            session, job_id, progress_done=done, progress_total=total, heartbeat_at=utcnow()
        )

    async def cancel_requested(self, session: AsyncSession, *, job_id: uuid.UUID, settings: Settings) -> bool:
        if cancel_marker(settings, job_id).exists():
            return True
        return await job_repository.cancel_requested(session, job_id)

    def read(self, job: Job, *, settings: Settings) -> JobRead:
        """The job as clients see it; a running job's progress from its file when it reports that way."""
        read = JobRead.of(job)
        if settings.is_sqlite and job.status == JobStatus.running.value:
            progress = _progress_by_file(settings, job.id)
            if progress is not None:
                return read.model_copy(update={"progress": progress})
        return read

    def forget_cancel_request(self, *, job_id: uuid.UUID, settings: Settings) -> None:
        """Once a job has ended: its cancel and progress files are not needed any more."""
        cancel_marker(settings, job_id).unlink(missing_ok=True)
        progress_marker(settings, job_id).unlink(missing_ok=True)

    async def finish(
        self,
        session: AsyncSession,
        *,
        job_id: uuid.UUID,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        error_message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        error_count: int = 0,
        done: int | None = None,
    ) -> bool:
        """Ends a running job; False when it is no longer running (the reaper failed it meanwhile)."""
        values: dict[str, Any] = {
            "status": status.value,
            "result": result,
            "error_message": error_message,
            "error_count": error_count,
            "finished_at": utcnow(),
        }
        if done is not None:
            values.update(progress_done=done, progress_total=done)
        finished = await job_repository.transition(session, job_id, [JobStatus.running.value], **values)
        if finished and errors:
            await job_repository.delete_errors(session, job_id)
            await job_repository.add_errors(session, job_id, errors[:MAX_STORED_ERRORS])
        if finished:
            await self._notify_finished(session, await self._reload(session, job_id))
        return finished

    async def _notify_finished(self, session: AsyncSession, job: Job) -> None:
        """`job.finished` for the project's webhooks, in the transaction that ended the job."""
        if job.project_id is not None:
            await emit(session, job.project_id, JOB_FINISHED, {"job": JobRead.of(job).model_dump(mode="json")})

    async def reap(self, session: AsyncSession, *, settings: Settings) -> tuple[int, int]:
        """Fails running jobs whose worker has been silent too long (they can be retried), and sends again the
        tasks of jobs queued too long (their message was lost). Returns (failed, sent again)."""
        now = utcnow()
        timeout = settings.job_heartbeat_timeout_seconds
        failed = await job_repository.fail_silent_running(
            session, now - timedelta(seconds=timeout), now, WORKER_LOST.format(seconds=timeout)
        )
        for job_id in failed:
            await self._notify_finished(session, await self._reload(session, job_id))
        stale = await job_repository.mark_resent(
            session, now - timedelta(seconds=settings.job_resend_after_seconds), now
        )
        for job_id, kind in stale:
            enqueue_after_commit(session, TASK_OF_KIND[kind], str(job_id))
        if stale:
            logger.warning("sent %d queued job(s) again: their tasks had not started", len(stale))
        return len(failed), len(stale)


job_service = JobService()
