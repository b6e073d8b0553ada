"""SQL for versions: their rows (with their job's status), the streams a snapshot reads, and the bulk writes of a
restore."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from sqlalchemy import Column, MetaData, Row, String, Table, Uuid, collate, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.core.sql import rows_where_in
from annotation_platform.models import Annotation, Container, ContainerSchemaVersion, Item, Job, ProjectVersion, User

VERSION_KEYSET = Keyset((ProjectVersion.id,), (uuid.UUID,))

# A restore links each item to its parent by external id once all items are in: this temporary table holds the
# links meanwhile, so memory does not grow with the project.
_LINKS = Table(
    "restore_parent_links",
    MetaData(),
    Column("item_id", Uuid(), primary_key=True),
    Column("container_id", Uuid(), nullable=False),
    Column("parent_external_id", String(255), nullable=False),
    prefixes=["TEMPORARY"],
)


def _with_status() -> Any:
    return select(ProjectVersion, Job.status).outerjoin(Job, Job.id == ProjectVersion.job_id)


class VersionRepository:
    async def add(self, session: AsyncSession, version: ProjectVersion) -> None:
        session.add(version)
        await session.flush()

    async def get(
        self, session: AsyncSession, project_id: uuid.UUID, version_id: uuid.UUID
    ) -> tuple[ProjectVersion, str | None] | None:
        """The project's version with its job's status; None for another project's version or none at all."""
        statement = _with_status().where(ProjectVersion.id == version_id, ProjectVersion.project_id == project_id)
        row = (await session.execute(statement)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def get_by_id(self, session: AsyncSession, version_id: uuid.UUID) -> ProjectVersion | None:
        return await session.get(ProjectVersion, version_id)

    async def by_tag(
        self, session: AsyncSession, project_id: uuid.UUID, tag: str
    ) -> tuple[ProjectVersion, str | None] | None:
        statement = _with_status().where(ProjectVersion.project_id == project_id, ProjectVersion.tag == tag)
        row = (await session.execute(statement)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def delete(self, session: AsyncSession, version: ProjectVersion) -> None:
        await session.delete(version)
        await session.flush()

    async def page(
        self, session: AsyncSession, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Row[Any]], str | None]:
        statement = _with_status().where(ProjectVersion.project_id == project_id)
        return await fetch_page(session, statement, VERSION_KEYSET, params, lambda row: (row[0].id,))

    async def count(self, session: AsyncSession, project_id: uuid.UUID) -> int:
        statement = select(func.count()).select_from(ProjectVersion).where(ProjectVersion.project_id == project_id)
        return int((await session.execute(statement)).scalar_one())

    async def set_values(self, session: AsyncSession, version_id: uuid.UUID, **values: Any) -> None:
        await session.execute(update(ProjectVersion).where(ProjectVersion.id == version_id).values(**values))

    # --- what a snapshot reads -------------------------------------------------------------------------------

    async def items(self, session: AsyncSession, container_id: uuid.UUID, chunk: int) -> AsyncIterator[list[Any]]:
        """The container's items in code-point order of external id, in chunks, from one server-side cursor.

        On PostgreSQL the order is `COLLATE "C"` (byte order of UTF-8, which is code-point order), not the
        database's collation: the diff compares the files with Python's string order.
        """
        parent = aliased(Item)
        external_id: Any = Item.external_id
        if session.get_bind().dialect.name == "postgresql":
            external_id = collate(Item.external_id, "C")
        statement = (
            select(
                Item.id,
                Item.external_id,
                Item.content,
                Item.metadata_.label("metadata"),
                Item.sequence,
                Item.schema_version,
                Item.created_at,
                parent.external_id.label("parent"),
            )
            .outerjoin(parent, parent.id == Item.parent_id)
            .where(Item.container_id == container_id)
            .order_by(external_id)
        )
        result = await session.stream(statement.execution_options(yield_per=chunk))
        async for rows in result.partitions(chunk):
            yield list(rows)

    async def item_schemas(self, session: AsyncSession, container_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every item schema the container has had, oldest first: `{"version", "item_schema"}`."""
        statement = (
            select(ContainerSchemaVersion.version, ContainerSchemaVersion.item_schema)
            .where(ContainerSchemaVersion.container_id == container_id)
            .order_by(ContainerSchemaVersion.version)
        )
        return [{"version": row.version, "item_schema": row.item_schema} for row in await session.execute(statement)]

    async def annotations_of_items(self, session: AsyncSession, item_ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
        """The annotations on these items, in creation order, with their author's username."""
        statement = (
            select(
                Annotation.item_id,
                Annotation.id,
                Annotation.type,
                Annotation.data,
                Annotation.start_offset,
                Annotation.end_offset,
                Annotation.created_by,
                User.username.label("annotator"),
                Annotation.is_gold,
                Annotation.version,
                Annotation.created_at,
            )
            .outerjoin(User, User.id == Annotation.created_by)
            .order_by(Annotation.id)
        )
        return await rows_where_in(session, statement, Annotation.item_id, list(item_ids), Uuid())

    # --- what a restore writes -------------------------------------------------------------------------------

    async def existing_users(self, session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        statement = select(User.id)
        return {row.id for row in await rows_where_in(session, statement, User.id, list(user_ids), Uuid())}

    async def add_container(self, session: AsyncSession, container: Container) -> None:
        session.add(container)
        await session.flush()

    async def insert_items(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows keyed by column name (`metadata`, not the attribute `metadata_`): a Core executemany, without the
        ORM's per-row bookkeeping."""
        if rows:
            await session.execute(insert(cast(Table, Item.__table__)), rows)

    async def insert_annotations(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(insert(cast(Table, Annotation.__table__)), rows)

    async def start_parent_links(self, session: AsyncSession) -> None:
        connection = await session.connection()
        await connection.run_sync(lambda sync: _LINKS.create(sync, checkfirst=False))

    async def add_parent_links(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(insert(_LINKS), rows)

    async def resolve_parent_links(self, session: AsyncSession) -> None:
        """Every linked item gets the id of its parent (by external id, in its container), then the links go."""
        parent = aliased(Item)
        parent_id = (
            select(parent.id)
            .join(
                _LINKS,
                (parent.container_id == _LINKS.c.container_id) & (parent.external_id == _LINKS.c.parent_external_id),
            )
            .where(_LINKS.c.item_id == Item.id)
            .scalar_subquery()
        )
        await session.execute(
            update(Item)
            .where(Item.id.in_(select(_LINKS.c.item_id)))
            .values(parent_id=parent_id)
            .execution_options(synchronize_session=False)
        )
        connection = await session.connection()
        await connection.run_sync(lambda sync: _LINKS.drop(sync, checkfirst=False))

    async def set_item_count(self, session: AsyncSession, container_id: uuid.UUID, count: int) -> None:
        await session.execute(update(Container).where(Container.id == container_id).values(item_count=count))


version_repository = VersionRepository()
