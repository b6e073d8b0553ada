"""Task entry points, named "domain.verb": each takes ids, and calls a service with its own session."""

from __future__ import annotations

import smtplib
import uuid

import httpx

from annotation_platform.agreement.service import run_agreement
from annotation_platform.audit.alerts import ALERT_TASK, send_alert
from annotation_platform.backup.service import run_backup, run_scheduled_backup
from annotation_platform.core.queue import WEBHOOK_SWEEP_TASK
from annotation_platform.data_export.service import export_service, run_export
from annotation_platform.data_import.service import import_service, run_import
from annotation_platform.job.service import job_service
from annotation_platform.key_rotation.service import ROTATE_TASK, key_rotation_service
from annotation_platform.mail.service import SEND_TASK, deliver
from annotation_platform.version.service import run_restore, run_snapshot
from annotation_platform.webhook import delivery as webhook_delivery
from annotation_platform.webhook.events import DELIVER_TASK
from workers.app import app, runtime


@app.task(name="imports.run")
def run_import_task(job_id: str) -> None:
    """Runs an import job; the service owns its transactions (one for the data, short ones for progress)."""
    current = runtime()
    current.run(run_import(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="imports.expire_uploads")
def expire_uploads() -> int:
    """Deletes uploads of ended imports older than UPLOAD_RETENTION_HOURS (failed and cancelled ones are kept
    that long for a retry)."""
    current = runtime()

    async def expire() -> int:
        async with current.sessionmaker() as session:
            return await import_service.expire_uploads(session, settings=current.settings)

    return current.run(expire())


@app.task(name="jobs.reap")
def reap_jobs() -> tuple[int, int]:
    """Fails running jobs whose worker went silent (killed, lost): they end `failed` and can be retried. Sends
    again the tasks of jobs that stayed queued too long (their message was lost)."""
    current = runtime()

    async def reap() -> tuple[int, int]:
        async with current.sessionmaker() as session, session.begin():
            return await job_service.reap(session, settings=current.settings)

    return current.run(reap())


@app.task(name=ROTATE_TASK)
def rotate_keys() -> dict[str, object]:
    """Re-encrypts with the current key every stored value and sealed file an older key made (key_rotation/)."""
    current = runtime()
    rotated = current.run(
        key_rotation_service.rotate(current.sessionmaker, key_ring=current.key_ring, settings=current.settings)
    )
    return rotated.as_dict()


@app.task(name="exports.run")
def run_export_task(job_id: str) -> None:
    """Runs an export job: reads the project in pages and writes the file to the export store."""
    current = runtime()
    current.run(run_export(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="exports.expire")
def expire_exports() -> int:
    """Deletes export files older than EXPORT_RETENTION_HOURS; their jobs' results say `expired`."""
    current = runtime()

    async def expire() -> int:
        async with current.sessionmaker() as session, session.begin():
            return await export_service.expire(session, settings=current.settings)

    return current.run(expire())


@app.task(name="backups.run")
def run_backup_task(job_id: str | None = None) -> None:
    """Runs a backup job; without one (beat's schedule), creates a job of nobody's and runs it."""
    current = runtime()
    if job_id is None:
        current.run(run_scheduled_backup(current.sessionmaker, settings=current.settings))
    else:
        current.run(run_backup(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="agreement.run")
def run_agreement_task(job_id: str) -> None:
    """Computes the agreement report of a container (or a project) too big to compute in the request."""
    current = runtime()
    current.run(run_agreement(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="versions.snapshot")
def run_snapshot_task(job_id: str) -> None:
    """Takes a version's snapshot: reads the project in one transaction into a compressed file."""
    current = runtime()
    current.run(run_snapshot(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(name="versions.restore")
def run_restore_task(job_id: str) -> None:
    """Restores a version's snapshot into a new project, in one transaction."""
    current = runtime()
    current.run(run_restore(current.sessionmaker, uuid.UUID(job_id), settings=current.settings))


@app.task(
    name=SEND_TASK,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    max_retries=5,
)
def send_mail_task(to: str, subject: str, body: str) -> str:
    """Delivers one mail (SMTP, or the outbox folder); an unreachable server is retried with backoff."""
    return deliver(runtime().settings, to=to, subject=subject, body=body)


@app.task(
    name=ALERT_TASK, autoretry_for=(smtplib.SMTPException, OSError, httpx.HTTPError), retry_backoff=True, max_retries=5
)
def send_security_alert_task(event_id: str) -> int:
    """Mails the superusers and/or calls the webhook about one security event (SECURITY_ALERT_*)."""
    current = runtime()
    return current.run(send_alert(current.sessionmaker, uuid.UUID(event_id), settings=current.settings))


@app.task(name=DELIVER_TASK)
def deliver_webhook_task(webhook_id: str) -> int:
    """Sends a webhook's due deliveries in order (one worker per webhook at a time; a duplicate does nothing)."""
    current = runtime()
    return current.run(
        webhook_delivery.deliver(
            current.sessionmaker, uuid.UUID(webhook_id), settings=current.settings, key_ring=current.key_ring
        )
    )


@app.task(name=WEBHOOK_SWEEP_TASK)
def sweep_webhooks_task() -> int:
    """Beat's retry clock: queues the webhooks whose oldest pending delivery is due."""
    current = runtime()
    return current.run(webhook_delivery.sweep(current.sessionmaker))
