"""What changed, kept beside the data: annotation revisions and the per-project change feed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base

REVISION_ACTIONS = ("created", "updated", "reverted", "deleted")
CHANGE_ACTIONS = ("created", "updated", "deleted")
CHANGE_RESOURCES = ("container", "item", "annotation")

SequenceType = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit sequence; on SQLite an INTEGER PRIMARY KEY, which is the rowid and numbered by the database."""


class AnnotationRevision(Base):
    """One state of an annotation: written in the transaction of every create, update, revert and delete.

    `version` is the annotation's version after the change; a deletion is the version after the last one, with
    the last content. No foreign key to the annotation or its item, which may be deleted while the history stays;
    the history goes with the annotation's container (and so with its project). `changed_by` has no foreign key,
    as in the audit trail: history is not rewritten when an account is deleted.
    """

    __tablename__ = "annotation_revisions"
    __table_args__ = (
        CheckConstraint(f"action IN ({', '.join(repr(a) for a in REVISION_ACTIONS)})", name="action_known"),
        Index(None, "container_id"),
    )

    annotation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    start_offset: Mapped[int | None]
    end_offset: Mapped[int | None]
    is_gold: Mapped[bool]
    reverted_from: Mapped[int | None]
    changed_by: Mapped[uuid.UUID | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Change(Base):
    """One entry of a project's change feed.

    `position` is numbered by the database. On PostgreSQL `txid` is the writing transaction's id
    (`pg_current_xact_id()`), and the feed is ordered by `(txid, position)` and served only below the oldest
    transaction still running, so a change committed late can never land behind a client's cursor. SQLite has
    one writer at a time, so `position` alone is commit order there and `txid` is 0 (docs/versioning.md).
    """

    __tablename__ = "changes"
    __table_args__ = (
        CheckConstraint(f"action IN ({', '.join(repr(a) for a in CHANGE_ACTIONS)})", name="action_known"),
        CheckConstraint(f"resource_type IN ({', '.join(repr(r) for r in CHANGE_RESOURCES)})", name="resource_known"),
        Index(None, "project_id", "txid", "position"),
        {"sqlite_autoincrement": True},
    )

    position: Mapped[int] = mapped_column(SequenceType, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[uuid.UUID]
    container_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None]
    changed_by: Mapped[uuid.UUID | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
