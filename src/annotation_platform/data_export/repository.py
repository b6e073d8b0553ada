"""SQL for exports: the containers to read, the (type, annotator) label columns, items in keyset pages, and
the annotations of one page of items.

On PostgreSQL a page comes ready-made instead (`built_page`): the database builds each item's JSON object, or
its CSV cells, in the same query that reads the page, so the worker only writes bytes. The rules are those of
the Python builder in `service.py` (`_Records`, `label_value`, `_text`), and the tests run both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    Row,
    Select,
    String,
    Uuid,
    bindparam,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from annotation_platform.core.sql import rows_where_in
from annotation_platform.models import Annotation, Container, Item, Job, JobKind, JobStatus, User

UNKNOWN_AUTHOR = "deleted-user"


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
        author = func.coalesce(User.username, UNKNOWN_AUTHOR).label("author")
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
        author = func.coalesce(User.username, UNKNOWN_AUTHOR).label("author")
        statement = (
            select(
                Annotation.item_id,
                Annotation.id,
                Annotation.type,
                Annotation.data,
                Annotation.start_offset,
                Annotation.end_offset,
                Annotation.version,
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

    async def built_page(
        self,
        session: AsyncSession,
        container: Container,
        after: tuple[int, uuid.UUID] | None,
        limit: int,
        *,
        types: Sequence[str] | None,
        csv_columns: tuple[Sequence[str], Sequence[str]] | None,
    ) -> list[Row[Any]]:
        """PostgreSQL: up to `limit` items after `(sequence, id)`, each with `id`, `sequence`, `annotations` (how
        many) and either `line` (its JSON object as text) or, given `csv_columns` (metadata keys, label keys), its
        CSV cells as text or NULL: `external_id`, `content`, `parent`, `m0`..., `l0`...."""
        params: dict[str, Any] = {
            "container_id": container.id,
            "container_name": container.name,
            "limit": limit,
            "after_sequence": after[0] if after else -1,
            "after_id": after[1] if after else uuid.UUID(int=0),
            "types": list(types) if types is not None else None,
            "unknown": UNKNOWN_AUTHOR,
        }
        binds: list[BindParameter[Any]] = [
            bindparam("types", type_=ARRAY(String())),
            bindparam("after_id", type_=Uuid()),
        ]
        annotation_list = _ANNOTATION_LIST
        if csv_columns is None:
            columns = _JSON_LINE
        else:
            annotation_list = ""
            metadata_keys, label_keys = csv_columns
            cells = ["i.external_id", "i.content", "p.external_id AS parent"]
            for n, key in enumerate(metadata_keys):
                params[f"m{n}"] = key
                cells.append(f"i.metadata ->> :m{n} AS m{n}")
            for n, key in enumerate(label_keys):
                params[f"l{n}"] = key
                cells.append(f"ann.labels ->> :l{n} AS l{n}")
            columns = ", ".join(cells)
        sql = _BUILT_PAGE.format(columns=columns, annotation_list=annotation_list)
        statement = text(sql).bindparams(*binds)
        return list((await session.execute(statement, params)).all())

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


_JSON_LINE = """(jsonb_build_object(
        'container', CAST(:container_name AS text), 'container_id', CAST(:container_id AS uuid),
        'external_id', i.external_id, 'sequence', i.sequence, 'content', i.content, 'parent', p.external_id,
        'metadata', CASE WHEN jsonb_typeof(i.metadata) = 'object' THEN i.metadata ELSE '{}'::jsonb END,
        'annotations', coalesce(ann.list, '[]'::jsonb))
    || coalesce((SELECT jsonb_object_agg('metadata.' || m.key, m.value)
                 FROM jsonb_each(CASE WHEN jsonb_typeof(i.metadata) = 'object' THEN i.metadata END) AS m), '{}')
    || coalesce(ann.labels, '{}'))::text AS line"""

# One pass over an item's annotations: how many, the list (JSON formats only) and the label of each (type,
# annotator): jsonb keeps the last value of a repeated key, so spans come first and plain annotations last,
# newest first: the oldest plain annotation wins, else the oldest span (as `_Records.build` does).
_BUILT_PAGE = """
SELECT i.id, i.sequence, coalesce(ann.count, 0) AS annotations, {columns}
FROM items AS i
LEFT JOIN items AS p ON p.id = i.parent_id
LEFT JOIN LATERAL (
    SELECT count(*) AS count, {annotation_list}
        jsonb_object_agg(
            a.type || ':' || coalesce(u.username, :unknown),
            CASE
                WHEN jsonb_typeof(a.data) = 'object' AND a.type = 'thread' AND a.data ? 'thread_id'
                    THEN a.data -> 'thread_id'
                WHEN jsonb_typeof(a.data) = 'object' AND a.data ? 'value' THEN a.data -> 'value'
                ELSE a.data
            END
            ORDER BY a.start_offset IS NULL, a.id DESC
        ) AS labels
    FROM annotations AS a LEFT JOIN users AS u ON u.id = a.created_by
    WHERE a.item_id = i.id AND (CAST(:types AS text[]) IS NULL OR a.type = ANY(:types))
) AS ann ON true
WHERE i.container_id = :container_id AND (i.sequence, i.id) > (:after_sequence, :after_id)
ORDER BY i.sequence, i.id
LIMIT :limit
"""

_ANNOTATION_LIST = """jsonb_agg(jsonb_build_object(
            'type', a.type, 'data', a.data, 'start_offset', a.start_offset, 'end_offset', a.end_offset,
            'author', coalesce(u.username, :unknown), 'version', a.version) ORDER BY a.id) AS list,"""

export_repository = ExportRepository()
