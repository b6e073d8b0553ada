"""The Celery application the API and the workers share, and sending work only once the data is committed.

The broker is Redis when REDIS_URL is set. Without it, kombu's filesystem transport keeps messages as files in
DATA_DIR: a real worker process takes them, with no server to run. Results are not stored by Celery: the jobs
table is the source of truth.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from time import monotonic
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils import json as kombu_json
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from annotation_platform.config import Settings

logger = logging.getLogger(__name__)

QUEUE_INFO_KEY = "annotation_platform.queue"
PENDING_INFO_KEY = "annotation_platform.pending_tasks"
REAPER_TASK = "jobs.reap"
EXPIRE_EXPORTS_TASK = "exports.expire"
BACKUP_TASK = "backups.run"
EXPIRE_UPLOADS_TASK = "imports.expire_uploads"
WEBHOOK_SWEEP_TASK = "webhooks.sweep"


def broker_folders(settings: Settings) -> tuple[Path, Path]:
    """The message folder and the control (broadcast) folder of the embedded broker, absolute, so the API,
    the workers and beat find the same ones whatever their working directory."""
    root = (settings.data_dir / "broker").resolve()
    return root / "messages", root / "control"


class _AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel writes a message file in place (under a lock its reader does not take), so a
    worker listing the folder meanwhile can take the file still empty, and dies on the JSON ("Unrecoverable
    error"). Written under another name and renamed, a message file is whole or absent: the reader only takes
    names that end in `.<queue>.msg`."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu names it two ways
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"
        try:
            with open(partial, "wb") as file:
                file.write(_kombu_dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    """The embedded broker: kombu's filesystem transport, its messages written atomically."""

    Channel = _AtomicFilesystemChannel


_kombu_dumps: Callable[[Any], str] = kombu_json.dumps  # kombu's encoding, which its reader decodes
EMBEDDED_TRANSPORT = f"{__name__}:{AtomicFilesystemTransport.__name__}"


def create_celery(settings: Settings) -> Celery:
    app = Celery("annotation_platform", set_as_current=False)
    if settings.redis_url:
        broker_url = settings.redis_url
        transport_options: dict[str, Any] = {"visibility_timeout": 3600}
        if settings.broker_key_prefix:
            transport_options["global_keyprefix"] = settings.broker_key_prefix
    else:
        messages, control = broker_folders(settings)
        for folder in (messages, control):
            folder.mkdir(parents=True, exist_ok=True)
        broker_url = "filesystem://"
        transport_options = {
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "control_folder": str(control),
            "polling_interval": 0.1,
        }
    app.conf.update(
        broker_url=broker_url,
        broker_transport=None if settings.redis_url else EMBEDDED_TRANSPORT,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue_name,
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged when it ends, and a task whose worker process died is not acknowledged,
        # so a killed worker's message is not silently lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_always_eager=False,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule_filename=str((settings.data_dir / "celerybeat-schedule").resolve()),
        beat_schedule={
            "reap-lost-jobs": {"task": REAPER_TASK, "schedule": timedelta(seconds=settings.reaper_interval_seconds)},
            "expire-exports": {
                "task": EXPIRE_EXPORTS_TASK,
                "schedule": timedelta(seconds=settings.export_expire_interval_seconds),
            },
            "webhook-retries": {
                "task": WEBHOOK_SWEEP_TASK,
                "schedule": timedelta(seconds=settings.webhook_sweep_interval_seconds),
            },
            "expire-uploads": {
                "task": EXPIRE_UPLOADS_TASK,
                "schedule": timedelta(seconds=settings.export_expire_interval_seconds),
            },
        },
    )
    if settings.backup_schedule_hours > 0:
        app.conf.beat_schedule["backup-database"] = {
            "task": BACKUP_TASK,
            "schedule": timedelta(hours=settings.backup_schedule_hours),
        }
    return app


@dataclass
class PendingTask:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def enqueue_after_commit(session: AsyncSession, name: str, *args: Any, **kwargs: Any) -> None:
    """Send task `name` once `session` commits; a rollback drops it.

    The Celery app comes from the session's `info` (set by the sessionmaker): sessions without one only log.
    """
    sync_session = session.sync_session
    if sync_session.get_transaction() is None:
        sync_session.begin()  # no I/O: it only makes the commit or rollback that follows a real one
    pending: list[PendingTask] = sync_session.info.setdefault(PENDING_INFO_KEY, [])
    pending.append(PendingTask(name, args, kwargs))


def _publish(app: Celery | None, tasks: list[PendingTask]) -> None:
    for task in tasks:
        if app is None:
            logger.warning("no task queue configured: %s not sent", task.name)
            continue
        try:
            app.send_task(task.name, args=list(task.args), kwargs=task.kwargs)
        except Exception:
            # The commit already happened: the job stays queued and visible, and can be retried.
            logger.exception("could not send task %s to the broker", task.name)


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    tasks: list[PendingTask] = session.info.pop(PENDING_INFO_KEY, [])
    if tasks:
        _publish(session.info.get(QUEUE_INFO_KEY), tasks)


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # Every rollback() of the outermost transaction, even one that never reached the database.
    if previous_transaction.parent is None:
        session.info.pop(PENDING_INFO_KEY, None)
