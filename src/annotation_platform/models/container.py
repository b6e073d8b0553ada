from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

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
