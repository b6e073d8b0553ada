"""Webhooks of a project and their deliveries (the outbox the worker sends from)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import JSONType, utcnow
from annotation_platform.models.base import Base, IdMixin


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its first attempt or for a retry
    succeeded = "succeeded"
    failed = "failed"  # gave up after WEBHOOK_MAX_ATTEMPTS


_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in DeliveryStatus)


class Webhook(IdMixin, Base):
    """A URL a manager registered for some event types. `secret` (and, during a rotation's grace period,
    `previous_secret`) are encrypted with the key ring; `lease_until` marks a worker sending its deliveries."""

    __tablename__ = "webhooks"
    __table_args__ = (
        CheckConstraint("consecutive_failures >= 0", name="failures_not_negative"),
        Index(None, "project_id", "id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(IdMixin, Base):
    """One event for one webhook: the exact body sent (so retries send the same bytes) and how sending went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # A webhook's deliveries in creation order (the list, and the oldest pending one to send next).
        Index(None, "webhook_id", "status", "id"),
        Index(None, "webhook_id", "id"),
        # The sweep: pending deliveries that are due.
        Index(None, "status", "next_attempt_at"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_snippet: Mapped[str | None] = mapped_column(String(512))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    redelivery_of: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
