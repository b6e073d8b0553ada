"""SQL for login sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import AuthSession, User

# Built once: a statement's construction and cache key cost more than its execution on every request.
_LIVE_WITH_USER = (
    select(AuthSession, User)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.token_hash == bindparam("token_hash"), AuthSession.expires_at > bindparam("now"))
)


class AuthSessionRepository:
    keyset = Keyset(columns=(AuthSession.id,), kinds=(uuid.UUID,))

    async def add(self, session: AsyncSession, auth_session: AuthSession) -> None:
        session.add(auth_session)
        await session.flush()

    async def get_live_with_user(
        self, session: AsyncSession, *, token_hash: str, now: datetime
    ) -> tuple[AuthSession, User] | None:
        row = (await session.execute(_LIVE_WITH_USER, {"token_hash": token_hash, "now": now})).first()
        return (row[0], row[1]) if row else None

    async def touch(self, session: AsyncSession, *, session_id: uuid.UUID, now: datetime) -> None:
        await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=now))

    async def delete(self, session: AsyncSession, *, session_id: uuid.UUID) -> None:
        await session.execute(delete(AuthSession).where(AuthSession.id == session_id))

    async def delete_all_but(self, session: AsyncSession, *, user_id: uuid.UUID, keep: uuid.UUID | None) -> None:
        """End every session of the user, except `keep` (the one making the request) when given."""
        statement = delete(AuthSession).where(AuthSession.user_id == user_id)
        if keep is not None:
            statement = statement.where(AuthSession.id != keep)
        await session.execute(statement)

    async def get_live_own(
        self, session: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
    ) -> AuthSession | None:
        statement = select(AuthSession).where(
            AuthSession.id == session_id, AuthSession.user_id == user_id, AuthSession.expires_at > now
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def page_live(
        self, session: AsyncSession, *, user_id: uuid.UUID, now: datetime, params: PageParams
    ) -> tuple[list[AuthSession], str | None]:
        statement = select(AuthSession).where(AuthSession.user_id == user_id, AuthSession.expires_at > now)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count_live(self, session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> int:
        statement = select(func.count()).where(AuthSession.user_id == user_id, AuthSession.expires_at > now)
        return int((await session.execute(statement)).scalar_one())

    async def delete_expired(self, session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
        await session.execute(delete(AuthSession).where(AuthSession.user_id == user_id, AuthSession.expires_at <= now))


auth_session_repository = AuthSessionRepository()
