"""The audit trail: who did what to which resource, when, from where. Rows are only ever added."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import JSONType, utcnow
from annotation_platform.models.base import Base, IdMixin


class AuditEvent(IdMixin, Base):
    """One recorded action. Ids are UUIDv7, so id order is time order.

    No foreign keys on purpose: the trail outlives the users, keys and projects it mentions, and a cascade
    would have to change or remove rows that must never change. PostgreSQL refuses UPDATE and DELETE on the
    table with a trigger (created by the migration)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "project_id", "id"),
        Index(None, "actor_user_id", "id"),
        Index(None, "action", "id"),
    )

    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[uuid.UUID | None]
    actor_api_key_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[uuid.UUID | None]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
