"""SQL for API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import ApiKey, User


class ApiKeyRepository:
    keyset = Keyset(columns=(ApiKey.id,), kinds=(uuid.UUID,))

    async def add(self, session: AsyncSession, api_key: ApiKey) -> None:
        session.add(api_key)
        await session.flush()

    async def get_own(self, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        statement = select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
        return (await session.execute(statement)).scalar_one_or_none()

    async def get_with_user(self, session: AsyncSession, secret_hash: str) -> tuple[ApiKey, User] | None:
        statement = select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.secret_hash == secret_hash)
        row = (await session.execute(statement)).first()
        return (row[0], row[1]) if row else None

    async def page(
        self, session: AsyncSession, user_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ApiKey], str | None]:
        statement = select(ApiKey).where(ApiKey.user_id == user_id)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession, user_id: uuid.UUID) -> int:
        statement = select(func.count()).where(ApiKey.user_id == user_id)
        return int((await session.execute(statement)).scalar_one())

    async def touch(self, session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))

    async def delete(self, session: AsyncSession, api_key: ApiKey) -> None:
        await session.delete(api_key)
        await session.flush()


api_key_repository = ApiKeyRepository()
