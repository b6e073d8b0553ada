"""Links between accounts and an OpenID Connect provider's users. No provider tokens are kept: they are only
needed during the login."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base, IdMixin


class OAuthAccount(IdMixin, Base):
    """The provider's user `subject` (its stable `sub` claim) logs in as `user_id`."""

    __tablename__ = "oauth_accounts"
    __table_args__ = (UniqueConstraint("provider", "subject"), Index(None, "user_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
