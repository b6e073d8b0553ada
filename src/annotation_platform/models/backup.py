"""Database backups: one row per file in BACKUP_DIR, with what proves the file is intact."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base, IdMixin


class Backup(IdMixin, Base):
    """A backup file (`filename` in BACKUP_DIR): its SHA-256, its size, when it was taken, by which job."""

    __tablename__ = "backups"
    __table_args__ = (
        CheckConstraint("backend IN ('postgresql', 'sqlite')", name="backend_known"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        Index(None, "created_at"),
    )

    backend: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
