"""Project versions: named, immutable snapshots of a project (or of some of its containers).

The snapshot itself is a compressed file in the export store; this row is its metadata, so listing and reading
versions never opens a file. The snapshot job (`job_id`) says whether the file is there yet: the counts, size,
checksum and storage key are filled in when it succeeds, and never change afterwards.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import JSONType, utcnow
from annotation_platform.models.base import Base, IdMixin


class ProjectVersion(IdMixin, Base):
    __tablename__ = "project_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "tag"),
        # The project's versions in creation order (ids are UUIDv7).
        Index(None, "project_id", "id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, default="")
    container_ids: Mapped[list[Any] | None] = mapped_column(JSONType)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    snapshot_at: Mapped[datetime | None]
    storage_key: Mapped[str | None] = mapped_column(String(255))
    checksum: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    containers: Mapped[int | None] = mapped_column(BigInteger)
    items: Mapped[int | None] = mapped_column(BigInteger)
    annotations: Mapped[int | None] = mapped_column(BigInteger)
