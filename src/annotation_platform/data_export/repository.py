"""SQL for exports: the containers to read, the (type, annotator) label columns, items in keyset pages, and
the annotations of one page of items.

On PostgreSQL pages come ready-made instead: the database builds each item's JSON object in the query that
reads the page (`json_page`), and writes CSV rows itself with `COPY ... TO STDOUT` (`copy_csv_page`), so the
worker only writes bytes. The rules are those of
the Python builder in `service.py` (`_Records`, `label_value`, `_text`), and the tests run both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet run a cell as a formula."""
_FORMULA_STARTS_SQL = "'=', '+', '-', '@', E'\\t', E'\\r'"


@dataclass(frozen=True)
class PageBounds:
    items: int
    annotations: int
    last: tuple[int, uuid.UUID]


def _csv_cell(expression: str) -> str:
    """A CSV cell from a text expression: formulas get a leading `'` (as `service.neutralise`), and an empty
    value becomes NULL, which COPY writes as an empty, unquoted cell (as Python's csv module does)."""
    expression = f"({expression})"
    return (
        f"CASE WHEN left({expression}, 1) IN ({_FORMULA_STARTS_SQL}) THEN '''' || {expression} "
        f"ELSE nullif({expression}, '') END"
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

    async def json_page(
        self,
        session: AsyncSession,
        container: Container,
        after: tuple[int, uuid.UUID] | None,
        limit: int,
        *,
        types: Sequence[str] | None,
    ) -> list[Row[Any]]:
        """PostgreSQL: up to `limit` items after `(sequence, id)`, each with `id`, `sequence`, `annotations` (how
        many) and `line`: its JSON object as text, built by the database."""
        params: dict[str, Any] = {
            "container_id": container.id,
            "container_name": container.name,
            "limit": limit,
            "after_sequence": after[0] if after else -1,
            "after_id": after[1] if after else uuid.UUID(int=0),
            "types": list(types) if types is not None else None,
            "unknown": UNKNOWN_AUTHOR,
        }
        statement = text(_JSON_PAGE).bindparams(
            bindparam("types", type_=ARRAY(String())), bindparam("after_id", type_=Uuid())
        )
        return list((await session.execute(statement, params)).all())

    async def page_bounds(
        self,
        session: AsyncSession,
        container_id: uuid.UUID,
        after: tuple[int, uuid.UUID] | None,
        limit: int,
        types: Sequence[str] | None,
    ) -> PageBounds | None:
        """PostgreSQL: the next page's size, its annotations and its last `(sequence, id)`; None past the end."""
        params = {
            "container_id": container_id,
            "after_sequence": after[0] if after else -1,
            "after_id": after[1] if after else uuid.UUID(int=0),
            "limit": limit,
            "types": list(types) if types is not None else None,
        }
        statement = text(_PAGE_BOUNDS).bindparams(
            bindparam("types", type_=ARRAY(String())), bindparam("after_id", type_=Uuid())
        )
        row = (await session.execute(statement, params)).one()
        if not row.items:
            return None
        return PageBounds(int(row.items), int(row.annotations), (int(row.last_sequence), row.last_id))

    async def copy_csv_page(
        self,
        session: AsyncSession,
        container: Container,
        after: tuple[int, uuid.UUID] | None,
        last: tuple[int, uuid.UUID],
        *,
        types: Sequence[str] | None,
        metadata_keys: Sequence[str],
        label_keys: Sequence[str],
    ) -> bytes:
        """PostgreSQL: the CSV rows of the items after `after` up to `last`, by `COPY ... TO STDOUT (FORMAT csv)`
        in the session's transaction: cells as `_CsvWriter` writes them, formulas neutralised, `\n` line ends."""
        params: dict[str, Any] = {
            "container_id": container.id,
            "container_name": container.name,
            "after_sequence": after[0] if after else -1,
            "after_id": after[1] if after else uuid.UUID(int=0),
            "last_sequence": last[0],
            "last_id": last[1],
            "types": list(types) if types is not None else None,
            "unknown": UNKNOWN_AUTHOR,
        }
        cells = ["CAST(:container_name AS text)", "i.external_id", "i.sequence::text", "i.content", "p.external_id"]
        for n, key in enumerate(metadata_keys):
            params[f"m{n}"] = key
            cells.append(f"i.metadata ->> CAST(:m{n} AS text)")
        for n, key in enumerate(label_keys):
            params[f"l{n}"] = key
            cells.append(f"ann.labels ->> CAST(:l{n} AS text)")
        binds: list[BindParameter[Any]] = [
            bindparam(name, type_=Uuid()) for name in ("after_id", "last_id", "container_id")
        ]
        if label_keys:
            binds.append(bindparam("types", type_=ARRAY(String())))
        sql = _CSV_PAGE.format(cells=", ".join(_csv_cell(cell) for cell in cells), labels=_LABELS if label_keys else "")
        statement = text(sql).bindparams(*binds)
        compiled = statement.compile(dialect=session.get_bind().dialect)
        arguments = [params[name] for name in compiled.positiontup or ()]
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        if raw is None:
            raise RuntimeError("the connection was closed while an export was reading")
        received: list[bytes] = []

        async def keep(data: bytes) -> None:
            received.append(data)

        await raw.copy_from_query(str(compiled), *arguments, output=keep, format="csv")
        return b"".join(received)

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
_ANNOTATIONS_LATERAL = """
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
"""

_ANNOTATION_LIST = """jsonb_agg(jsonb_build_object(
            'type', a.type, 'data', a.data, 'start_offset', a.start_offset, 'end_offset', a.end_offset,
            'author', coalesce(u.username, :unknown), 'version', a.version) ORDER BY a.id) AS list,"""

_JSON_PAGE = (
    """
SELECT i.id, i.sequence, coalesce(ann.count, 0) AS annotations, """
    + _JSON_LINE
    + """
FROM items AS i
LEFT JOIN items AS p ON p.id = i.parent_id
"""
    + _ANNOTATIONS_LATERAL.format(annotation_list=_ANNOTATION_LIST)
    + """
WHERE i.container_id = :container_id AND (i.sequence, i.id) > (:after_sequence, :after_id)
ORDER BY i.sequence, i.id
LIMIT :limit
"""
)

_CSV_PAGE = """
SELECT {cells}
FROM items AS i
LEFT JOIN items AS p ON p.id = i.parent_id
{labels}
WHERE i.container_id = :container_id AND (i.sequence, i.id) > (:after_sequence, :after_id)
    AND (i.sequence, i.id) <= (:last_sequence, :last_id)
ORDER BY i.sequence, i.id
"""

_LABELS = _ANNOTATIONS_LATERAL.format(annotation_list="")

_PAGE_BOUNDS = """
WITH page AS (
    SELECT i.id, i.sequence FROM items AS i
    WHERE i.container_id = :container_id AND (i.sequence, i.id) > (:after_sequence, :after_id)
    ORDER BY i.sequence, i.id
    LIMIT :limit
), last AS (
    SELECT sequence, id FROM page ORDER BY sequence DESC, id DESC LIMIT 1
)
SELECT
    (SELECT count(*) FROM page) AS items,
    (SELECT count(*) FROM annotations AS a JOIN page ON a.item_id = page.id
     WHERE CAST(:types AS text[]) IS NULL OR a.type = ANY(:types)) AS annotations,
    (SELECT sequence FROM last) AS last_sequence,
    (SELECT id FROM last) AS last_id
"""

export_repository = ExportRepository()
