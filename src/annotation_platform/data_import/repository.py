"""SQL for imports: the annotator among the project's members, and the batched writes of one import."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, Uuid, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.sql import rows_where_in
from annotation_platform.models import Annotation, Container, Item, Membership, User


class ImportRepository:
    async def member_by_name_or_email(
        self, session: AsyncSession, project_id: uuid.UUID, name_or_email: str
    ) -> uuid.UUID | None:
        wanted = name_or_email.strip().lower()
        statement = (
            select(User.id)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.project_id == project_id, or_(User.username == wanted, User.email == wanted))
            .limit(1)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def container(self, session: AsyncSession, container_id: uuid.UUID) -> Container | None:
        return await session.get(Container, container_id)

    async def user_exists(self, session: AsyncSession, user_id: uuid.UUID) -> bool:
        return (await session.execute(select(User.id).where(User.id == user_id))).first() is not None

    async def item_ids(
        self, session: AsyncSession, container_id: uuid.UUID, external_ids: Sequence[str]
    ) -> dict[str, uuid.UUID]:
        statement = select(Item.external_id, Item.id).where(Item.container_id == container_id)
        rows = await rows_where_in(session, statement, Item.external_id, list(dict.fromkeys(external_ids)), String())
        return {row.external_id: row.id for row in rows}

    async def max_sequence(self, session: AsyncSession, container_id: uuid.UUID) -> int | None:
        return (
            await session.execute(select(func.max(Item.sequence)).where(Item.container_id == container_id))
        ).scalar_one()

    async def plain_annotations(
        self, session: AsyncSession, item_ids: Sequence[uuid.UUID], author: uuid.UUID, types: Sequence[str]
    ) -> dict[tuple[uuid.UUID, str], tuple[uuid.UUID, dict[str, Any], int]]:
        """The author's annotations without offsets on these items, by (item, type): the first of each pair."""
        if not item_ids or not types:
            return {}
        statement = (
            select(Annotation.item_id, Annotation.type, Annotation.id, Annotation.data, Annotation.version)
            .where(
                Annotation.created_by == author,
                Annotation.type.in_(list(types)),
                and_(Annotation.start_offset.is_(None), Annotation.end_offset.is_(None)),
            )
            .order_by(Annotation.id)
        )
        found: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, dict[str, Any], int]] = {}
        for row in await rows_where_in(session, statement, Annotation.item_id, list(dict.fromkeys(item_ids)), Uuid()):
            found.setdefault((row.item_id, row.type), (row.id, row.data, row.version))
        return found

    async def insert_items(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(insert(Item), rows)

    async def insert_annotations(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(insert(Annotation), rows)

    async def update_annotations(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows of `id`, `data`, `version`, `updated_at`: one executemany by primary key."""
        if rows:
            await session.execute(update(Annotation), rows)

    async def set_parents(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows of `id`, `parent_id`."""
        if rows:
            await session.execute(update(Item), rows)

    async def add_to_item_count(self, session: AsyncSession, container_id: uuid.UUID, delta: int) -> None:
        if delta:
            await session.execute(
                update(Container)
                .where(Container.id == container_id)
                .values(item_count=Container.item_count + delta)
                .execution_options(synchronize_session=False)
            )


import_repository = ImportRepository()
