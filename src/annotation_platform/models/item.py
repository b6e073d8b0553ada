from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, ForeignKeyConstraint, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.models.base import Base, IdMixin, TimestampMixin


class Item(IdMixin, TimestampMixin, Base):
    """One thing to annotate.

    The parent is referenced together with the container, `(parent_id, container_id)`, so the database
    itself refuses a parent from another container. That key is deferred to commit, which lets one
    batch insert turns that reply to turns later in the same batch.
    """

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("container_id", "external_id"),
        UniqueConstraint("id", "container_id"),
        ForeignKeyConstraint(
            ["parent_id", "container_id"],
            ["items.id", "items.container_id"],
            name="fk_items_parent_same_container",
            deferrable=True,
            initially="DEFERRED",
        ),
        Index(None, "container_id", "sequence", "id"),
        Index(None, "parent_id", "container_id"),
    )

    container_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text, default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    sequence: Mapped[int] = mapped_column(BigInteger)
    parent_id: Mapped[uuid.UUID | None]
    schema_version: Mapped[int] = mapped_column(server_default=text("1"))
