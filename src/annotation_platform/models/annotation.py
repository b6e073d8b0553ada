from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.models.base import Base, IdMixin, TimestampMixin


class Annotation(IdMixin, TimestampMixin, Base):
    """One label on one item by one user.

    `container_id` is copied from the item (and tied to it by the composite key) so that a container's
    annotations page through an index instead of a join over millions of items. Offsets must lie within the
    item's content; triggers created by the migrations enforce that, since a CHECK cannot see another row.

    `is_gold` marks the adjudicated (gold) answer: at most one gold annotation per item and type, which a partial
    unique index keeps even against concurrent adjudicators.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["item_id", "container_id"],
            ["items.id", "items.container_id"],
            name="fk_annotations_item_same_container",
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "(start_offset IS NULL AND end_offset IS NULL) OR "
            "(start_offset IS NOT NULL AND end_offset IS NOT NULL AND start_offset >= 0 "
            "AND end_offset > start_offset)",
            name="offsets_valid",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(None, "item_id", "id"),
        Index(None, "container_id", "id"),
        Index(None, "container_id", "type", "id"),
        Index(None, "container_id", "created_by", "id"),
        Index(
            "uq_annotations_gold_item_id_type",
            "item_id",
            "type",
            unique=True,
            sqlite_where=text("is_gold"),
            postgresql_where=text("is_gold"),
        ),
    )

    item_id: Mapped[uuid.UUID]
    container_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    start_offset: Mapped[int | None]
    end_offset: Mapped[int | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(default=1)
    is_gold: Mapped[bool] = mapped_column(default=False, server_default=false())
