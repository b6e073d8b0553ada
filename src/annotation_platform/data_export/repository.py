"""SQL for exports: the containers to read, the (type, annotator) label columns, items in keyset pages, and
the annotations of one page of items."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Row, Select, Uuid, case, func, literal, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from annotation_platform.core.sql import rows_where_in
from annotation_platform.models import Annotation, Container, Item, Job, JobKind, JobStatus, User

UNKNOWN_AUTHOR = "deleted-user"
GOLD_AUTHOR = "gold"


def _author() -> Any:
    """The label column's annotator: `gold` for the adjudicated answer, else the author's username."""
    return case((Annotation.is_gold, literal(GOLD_AUTHOR)), else_=func.coalesce(User.username, UNKNOWN_AUTHOR)).label(
        "author"
    )


class ExportRepository:
    async def containers(
        self, session: AsyncSession, project_id: uuid.UUID, container_ids: Sequence[uuid.UUID] | None
    ) -> list[Container]:
        """The project's containers (those of `container_ids` only, when given), by name."""
        statement = select(Container).where(Container.project_id == project_id)
        if container_ids is not None:
            statement = statement.where(Container.id.in_(list(container_ids)))
        return list((await session.execute(statement.order_by(Container.name, Container.id))).scalars())

    def _annotations_of(self, container_ids: Sequence[uuid.UUID], types: Sequence[str] | None) -> Select[Any]:
        author = _author()
        statement = (
            select(Annotation.type, author)
            .outerjoin(User, User.id == Annotation.created_by)
            .where(Annotation.container_id.in_(list(container_ids)))
        )
        if types is not None:
            statement = statement.where(Annotation.type.in_(list(types)))
        return statement

    async def label_columns(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], types: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        """Every (type, annotator username) with at least one annotation, in one query."""
        if not container_ids:
            return []
        statement = self._annotations_of(container_ids, types).distinct().order_by("type", "author")
        return [(row.type, row.author) for row in await session.execute(statement)]

    async def metadata_keys(self, session: AsyncSession, container_ids: Sequence[uuid.UUID]) -> list[str]:
        """The top-level metadata keys used by the items, in one query."""
        if not container_ids:
            return []
        wanted = list(container_ids)
        if session.get_bind().dialect.name == "postgresql":
            key = func.jsonb_object_keys(Item.metadata_).label("key")
            statement = select(key).where(Item.container_id.in_(wanted), func.jsonb_typeof(Item.metadata_) == "object")
            inner = statement.subquery()
            rows = await session.execute(select(inner.c.key).distinct().order_by(inner.c.key))
        else:
            each = func.json_each(Item.metadata_).table_valued("key")
            statement = select(each.c.key).select_from(Item).join(each, true())
            statement = statement.where(Item.container_id.in_(wanted), func.json_type(Item.metadata_) == "object")
            statement = statement.distinct().order_by(each.c.key)
            rows = await session.execute(statement)
        return [str(row[0]) for row in rows]

    async def items_page(
        self, session: AsyncSession, container_id: uuid.UUID, after: tuple[int, uuid.UUID] | None, limit: int
    ) -> list[Row[Any]]:
        """Up to `limit` items of the container after `(sequence, id)`, in order, with their parent's external id."""
        parent = aliased(Item)
        statement = (
            select(
                Item.id,
                Item.external_id,
                Item.content,
                Item.metadata_.label("metadata"),
                Item.sequence,
                parent.external_id.label("parent"),
            )
            .outerjoin(parent, parent.id == Item.parent_id)
            .where(Item.container_id == container_id)
            .order_by(Item.sequence, Item.id)
            .limit(limit)
        )
        if after is not None:
            position = tuple_(literal(after[0], BigInteger()), literal(after[1], Uuid()))
            statement = statement.where(tuple_(Item.sequence, Item.id) > position)
        return list((await session.execute(statement)).all())

    async def annotations_of_items(
        self, session: AsyncSession, item_ids: Sequence[uuid.UUID], types: Sequence[str] | None
    ) -> list[Row[Any]]:
        """The annotations on these items (of `types` only, when given), in creation order."""
        if not item_ids:
            return []
        author = _author()
        statement = (
            select(
                Annotation.item_id,
                Annotation.id,
                Annotation.type,
                Annotation.data,
                Annotation.start_offset,
                Annotation.end_offset,
                Annotation.version,
                Annotation.is_gold,
                author,
            )
            .outerjoin(User, User.id == Annotation.created_by)
            .order_by(Annotation.id)
        )
        if types is not None:
            statement = statement.where(Annotation.type.in_(list(types)))
        rows = await rows_where_in(session, statement, Annotation.item_id, list(item_ids), Uuid())
        rows.sort(key=lambda row: row.id)
        return rows

    async def finished_exports_before(
        self, session: AsyncSession, before: datetime, after: uuid.UUID | None, limit: int
    ) -> list[Job]:
        """Succeeded exports that finished before `before`, by id after `after` (expired ones included)."""
        statement = (
            select(Job)
            .where(
                Job.kind == JobKind.export.value,
                Job.status == JobStatus.succeeded.value,
                Job.finished_at < before,
            )
            .order_by(Job.id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(Job.id > after)
        return list((await session.execute(statement)).scalars())


export_repository = ExportRepository()
