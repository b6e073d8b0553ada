"""SQL for login sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.models import AuthSession, User


class AuthSessionRepository:
    async def add(self, session: AsyncSession, auth_session: AuthSession) -> None:
        session.add(auth_session)
        await session.flush()

    async def get_live_with_user(
        self, session: AsyncSession, *, token_hash: str, now: datetime
    ) -> tuple[AuthSession, User] | None:
        statement = (
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == token_hash, AuthSession.expires_at > now)
        )
        row = (await session.execute(statement)).first()
        return (row[0], row[1]) if row else None

    async def touch(self, session: AsyncSession, *, session_id: uuid.UUID, now: datetime) -> None:
        await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=now))

    async def delete(self, session: AsyncSession, *, session_id: uuid.UUID) -> None:
        await session.execute(delete(AuthSession).where(AuthSession.id == session_id))

    async def delete_expired(self, session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
        await session.execute(delete(AuthSession).where(AuthSession.user_id == user_id, AuthSession.expires_at <= now))


auth_session_repository = AuthSessionRepository()
