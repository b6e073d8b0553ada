"""SQL for memberships."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import Membership, Role, User


class MemberRepository:
    keyset = Keyset(columns=(Membership.user_id,), kinds=(uuid.UUID,))

    def _members_of(self, project_id: uuid.UUID) -> Select[Any]:
        return (
            select(Membership.user_id, User.username, Membership.role, Membership.added_at)
            .join(User, User.id == Membership.user_id)
            .where(Membership.project_id == project_id)
        )

    async def page(
        self, session: AsyncSession, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Any], str | None]:
        return await fetch_page(session, self._members_of(project_id), self.keyset, params, lambda r: (r.user_id,))

    async def count(self, session: AsyncSession, project_id: uuid.UUID) -> int:
        statement = select(func.count()).where(Membership.project_id == project_id)
        return int((await session.execute(statement)).scalar_one())

    async def get_row(self, session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID) -> Any | None:
        statement = self._members_of(project_id).where(Membership.user_id == user_id)
        return (await session.execute(statement)).first()

    async def get(self, session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        return await session.get(Membership, (project_id, user_id))

    async def lock_owners(self, session: AsyncSession, project_id: uuid.UUID) -> list[uuid.UUID]:
        """The owners' ids, locking their rows so that two demotions cannot both pass the last-owner check."""
        statement = (
            select(Membership.user_id)
            .where(Membership.project_id == project_id, Membership.role == Role.owner)
            .with_for_update()
        )
        return list((await session.execute(statement)).scalars())

    async def add(self, session: AsyncSession, membership: Membership) -> None:
        session.add(membership)
        await session.flush()

    async def delete(self, session: AsyncSession, membership: Membership) -> None:
        await session.delete(membership)
        await session.flush()


member_repository = MemberRepository()
