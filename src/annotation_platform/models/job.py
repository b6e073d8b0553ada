"""Background jobs (imports, exports, backups, agreement, version snapshots and restores) and an import's row errors.

The jobs table is the source of truth about background work: Celery only carries the job's id to a worker.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base, IdMixin


class JobKind(StrEnum):
    import_ = "import"
    export = "export"
    backup = "backup"
    agreement = "agreement"
    snapshot = "snapshot"
    restore = "restore"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})

_KIND_VALUES = ", ".join(f"'{kind.value}'" for kind in JobKind)
_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in JobStatus)


class Job(IdMixin, Base):
    """One unit of background work: who asked for it, with which parameters, how far it got, how it ended."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_KIND_VALUES})", name="kind_known"),
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status_known"),
        CheckConstraint("progress_done >= 0 AND progress_total >= 0", name="progress_not_negative"),
        UniqueConstraint("created_by", "idempotency_key"),
        # The caller's jobs in creation order (ids are UUIDv7).
        Index(None, "created_by", "id"),
        # The reaper: running jobs by heartbeat.
        Index(None, "status", "heartbeat_at"),
        Index(None, "project_id"),
    )

    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]


class JobError(Base):
    """One problem in one row of an import: `row` is the 1-based data row (the header is not counted)."""

    __tablename__ = "job_errors"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
