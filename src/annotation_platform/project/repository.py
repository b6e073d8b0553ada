"""SQL for projects. Every read is scoped to the caller through `readable_by`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import Membership, Project, User


class ProjectRepository:
    keyset = Keyset(columns=(Project.id,), kinds=(uuid.UUID,))

    def readable_by(self, user: User) -> Select[Any]:
        """Projects with the caller's role: members see theirs, superusers see all."""
        membership = (Membership.project_id == Project.id) & (Membership.user_id == user.id)
        statement = select(Project, Membership.role)
        if user.acts_as_superuser:
            return statement.outerjoin(Membership, membership)
        return statement.join(Membership, membership)

    async def get_with_role(
        self, session: AsyncSession, project_id: uuid.UUID, user: User
    ) -> tuple[Project, str | None] | None:
        row = (await session.execute(self.readable_by(user).where(Project.id == project_id))).first()
        return (row[0], row[1]) if row else None

    async def page(
        self, session: AsyncSession, user: User, params: PageParams
    ) -> tuple[list[tuple[Project, str | None]], str | None]:
        rows, cursor = await fetch_page(session, self.readable_by(user), self.keyset, params, lambda r: (r[0].id,))
        return [(row[0], row[1]) for row in rows], cursor

    async def count(self, session: AsyncSession, user: User) -> int:
        statement = select(func.count()).select_from(self.readable_by(user).subquery())
        return int((await session.execute(statement)).scalar_one())

    async def add(self, session: AsyncSession, project: Project, owner: Membership) -> None:
        session.add(project)
        await session.flush()
        session.add(owner)
        await session.flush()

    async def delete(self, session: AsyncSession, project: Project) -> None:
        await session.delete(project)
        await session.flush()


project_repository = ProjectRepository()
