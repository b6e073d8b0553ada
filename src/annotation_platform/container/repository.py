"""SQL for containers. `with_role` joins the caller's membership so access costs no extra query."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import Container, ContainerSchemaVersion, Membership, User

# Built once: a statement's construction and cache key cost more than its execution on every request.
_WITH_ROLE = (
    select(Container, Membership.role)
    .outerjoin(
        Membership,
        (Membership.project_id == Container.project_id) & (Membership.user_id == bindparam("user_id")),
    )
    .where(Container.id == bindparam("container_id"))
)


class ContainerRepository:
    keyset = Keyset(columns=(Container.id,), kinds=(uuid.UUID,))
    schema_keyset = Keyset(columns=(ContainerSchemaVersion.version,), kinds=(int,))

    def with_role(self, user: User) -> Select[Any]:
        membership = (Membership.project_id == Container.project_id) & (Membership.user_id == user.id)
        return select(Container, Membership.role).outerjoin(Membership, membership)

    async def get_with_role(
        self, session: AsyncSession, container_id: uuid.UUID, user: User
    ) -> tuple[Container, str | None] | None:
        row = (await session.execute(_WITH_ROLE, {"user_id": user.id, "container_id": container_id})).first()
        return (row[0], row[1]) if row else None

    async def page(
        self, session: AsyncSession, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Container], str | None]:
        statement = select(Container).where(Container.project_id == project_id)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession, project_id: uuid.UUID) -> int:
        statement = select(func.count()).where(Container.project_id == project_id)
        return int((await session.execute(statement)).scalar_one())

    async def name_taken(
        self, session: AsyncSession, project_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        statement = select(Container.id).where(Container.project_id == project_id, Container.name == name)
        if excluding is not None:
            statement = statement.where(Container.id != excluding)
        return (await session.execute(statement)).first() is not None

    async def add(self, session: AsyncSession, container: Container) -> None:
        session.add(container)
        await session.flush()

    async def next_schema_version(self, session: AsyncSession, container: Container) -> int:
        """Counts the container's schema version up in the database and returns the new number: a concurrent
        change of the schema, which this statement waits for (its row lock), is counted too instead of being
        given the same number."""
        statement = (
            update(Container)
            .where(Container.id == container.id)
            .values(item_schema_version=Container.item_schema_version + 1)
            .returning(Container.item_schema_version)
            .execution_options(synchronize_session=False)
        )
        number = int((await session.execute(statement)).scalar_one())
        set_committed_value(container, "item_schema_version", number)
        return number

    async def add_schema_version(self, session: AsyncSession, version: ContainerSchemaVersion) -> None:
        session.add(version)
        await session.flush()

    async def schema_versions(
        self, session: AsyncSession, container_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ContainerSchemaVersion], str | None, int | None]:
        statement = select(ContainerSchemaVersion).where(ContainerSchemaVersion.container_id == container_id)
        rows, cursor = await fetch_page(session, statement, self.schema_keyset, params, lambda r: (r[0].version,))
        total = None
        if params.include_total:
            counted = select(func.count()).select_from(statement.subquery())
            total = int((await session.execute(counted)).scalar_one())
        return [row[0] for row in rows], cursor, total

    async def delete(self, session: AsyncSession, container: Container) -> None:
        await session.delete(container)
        await session.flush()

    async def add_to_item_count(self, session: AsyncSession, container_id: uuid.UUID, delta: int) -> None:
        """Adjusts the count; on PostgreSQL this also locks the row, serialising item writes per container."""
        await session.execute(
            update(Container)
            .where(Container.id == container_id)
            .values(item_count=Container.item_count + delta)
            .execution_options(synchronize_session=False)
        )


container_repository = ContainerRepository()
