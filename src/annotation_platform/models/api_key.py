"""API keys: long-lived credentials for scripts, each capped by scopes, an expiry and allowed IP ranges."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import JSONType, utcnow
from annotation_platform.models.base import Base, IdMixin


class ApiKey(IdMixin, Base):
    """One key of one user. Only the SHA-256 of the secret is stored; `prefix` lets people tell keys apart."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "user_id", "id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    allowed_ips: Mapped[list[str] | None] = mapped_column(JSONType)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
