from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base, IdMixin, TimestampMixin


class User(IdMixin, TimestampMixin, Base):
    """An account, with the columns fastapi-users expects.

    Emails and usernames are stored lower-case, which makes their uniqueness case-insensitive.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("username = lower(username)", name="username_lowercase"),
    )

    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(1024))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    is_verified: Mapped[bool] = mapped_column(default=False)

    # Not a column: set for one request when the caller came with an API key that lacks the `admin` scope.
    superuser_powers_withheld = False

    @property
    def acts_as_superuser(self) -> bool:
        """Superuser powers for this request: the flag, unless the credential used does not carry them."""
        return self.is_superuser and not self.superuser_powers_withheld


class AuthSession(IdMixin, Base):
    """A login: the bearer token is stored only as its SHA-256, so a database dump holds no live tokens."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index(None, "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
