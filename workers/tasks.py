"""Task entry points, named "domain.verb": each takes ids, and calls a service with its own session."""

from __future__ import annotations

import uuid

from annotation_platform.data_import.service import run_import
from annotation_platform.job.service import job_service
from workers.app import app, runtime


@app.task(name="imports.run")
def run_import_task(job_id: str) -> None:
    """Runs an import job; the service owns its transactions (one for the data, short ones for progress)."""
    current = runtime()
    current.run(run_import(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="jobs.reap")
def reap_jobs() -> int:
    """Fails running jobs whose worker went silent (killed, lost): they end `failed` and can be retried."""
    current = runtime()

    async def reap() -> int:
        async with current.sessionmaker() as session, session.begin():
            return await job_service.reap(session, timeout_seconds=current.settings.job_heartbeat_timeout_seconds)

    return current.run(reap())
