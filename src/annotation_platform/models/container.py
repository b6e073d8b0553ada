from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base, IdMixin, TimestampMixin


class Container(IdMixin, TimestampMixin, Base):
    """A set of items in a project. `item_count` is kept by the writers, so no list has to count rows."""

    __tablename__ = "containers"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index(None, "project_id", "id"),
        CheckConstraint("item_count >= 0", name="item_count_not_negative"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64), default="generic")
    item_schema: Mapped[dict[str, Any] | None]
    item_count: Mapped[int] = mapped_column(BigInteger, default=0)
    item_schema_version: Mapped[int] = mapped_column(default=1, server_default=text("1"))


class ContainerSchemaVersion(Base):
    """Every item schema a container has had: version 1 at creation, one more at each change of `item_schema`.
    Items record the version their metadata was last validated against (`items.schema_version`)."""

    __tablename__ = "container_schema_versions"

    container_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    item_schema: Mapped[dict[str, Any] | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
