"""SQL for imports: the annotator among the project's members, and the batched writes of one import.

On PostgreSQL the rows go in through COPY: `ImportRepository.copy_*` stream records with asyncpg's
`copy_records_to_table` into TEMPORARY staging tables (ON COMMIT DROP, so a rollback or a commit removes them),
and set-based statements move them on into `items` and `annotations` inside the import's one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Uuid, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.change.repository import PG_CURRENT_TXID
from annotation_platform.core.field_crypto import (
    is_sealed_json,
    key_ring_of,
    open_data,
    seal_data,
    seal_item_values,
)
from annotation_platform.core.sql import rows_where_in
from annotation_platform.core.types import utcnow
from annotation_platform.models import Annotation, Container, Item, Membership, User


@dataclass(frozen=True, slots=True)
class StagedTarget:
    """Where staged rows go, and what the history and the change feed record about them."""

    container_id: uuid.UUID
    project_id: uuid.UUID
    author: uuid.UUID
    changed_by: uuid.UUID | None
    schema_version: int

    def params(self, now: datetime) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "project_id": self.project_id,
            "author": self.author,
            "changed_by": self.changed_by,
            "schema_version": self.schema_version,
            "now": now,
        }


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
            if (row.item_id, row.type) not in found:
                data = open_data(key_ring_of(session), row.data, row.id) if is_sealed_json(row.data) else row.data
                found[(row.item_id, row.type)] = (row.id, data, row.version)
        return found

    async def insert_items(self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False) -> None:
        """`sensitive`: the rows' content and metadata are sealed before they are sent."""
        if rows:
            if sensitive:
                key_ring = key_ring_of(session)
                rows = [seal_item_values(key_ring, row["id"], row) for row in rows]
            await session.execute(insert(Item), rows)

    async def insert_annotations(
        self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False
    ) -> None:
        if rows:
            await session.execute(insert(Annotation), self._sealed(session, rows) if sensitive else rows)

    async def update_annotations(
        self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False
    ) -> None:
        """Rows of `id`, `data`, `version`, `updated_at`: one executemany by primary key."""
        if rows:
            await session.execute(update(Annotation), self._sealed(session, rows) if sensitive else rows)

    def _sealed(self, session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key_ring = key_ring_of(session)
        return [seal_data(key_ring, row) for row in rows]

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

    # --- PostgreSQL: COPY into staging tables, then set-based SQL ---------------------------------------------

    async def create_stages(self, session: AsyncSession) -> None:
        """The staging tables of one import; they live until its transaction ends (ON COMMIT DROP)."""
        for statement in _STAGES:
            await session.execute(text(statement))

    async def analyze(self, session: AsyncSession) -> None:
        """Fresh planner statistics for the tables an import grows, counting its own uncommitted rows.

        Statements are prepared once and their plans cached (the foreign-key checks' too). Planned while a
        container's table looked empty, they scan it whole for every row, and an import slows down as it grows:
        85 ms per batch of 100 rows at 20,000 rows. ANALYZE, allowed inside the transaction, also invalidates
        those plans, so they are made again for the table as it now is.
        """
        await session.execute(text("ANALYZE items, annotations"))

    async def copy_records(
        self, session: AsyncSession, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
    ) -> None:
        """COPY (binary) through the session's own asyncpg connection, so inside the import's transaction."""
        if not records:
            return
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:
            raise RuntimeError("the connection was closed while an import was writing")
        await driver.copy_records_to_table(table, records=records, columns=list(columns))

    async def insert_staged_items(self, session: AsyncSession, target: StagedTarget, now: datetime) -> tuple[int, int]:
        """Moves the staged new items into `items` and empties the stage; (inserted, parents left for later).

        The stage carries a parent either resolved (`parent_id`: in the same batch) or by external id, looked
        up here by the unique index (earlier batches, items the container had); a parent not found yet is staged
        in `import_parents_stage` for `resolve_staged_parents` at the end.
        """
        row = (await session.execute(text(_INSERT_ITEMS), target.params(now))).one()
        await session.execute(text("TRUNCATE import_items_stage"))
        return int(row[0]), int(row[1])

    async def insert_staged_annotations(self, session: AsyncSession, target: StagedTarget, now: datetime) -> int:
        """The staged annotations, all on new items (so none can exist yet), with their first revisions and feed
        entries; empties the stage."""
        created = (await session.execute(text(_INSERT_ANNOTATIONS), target.params(now))).scalar_one()
        await session.execute(text("TRUNCATE import_annotations_stage"))
        return int(created)

    async def upsert_staged_annotations(
        self, session: AsyncSession, target: StagedTarget, now: datetime
    ) -> tuple[int, int, int]:
        """The staged annotations of `author`, by (item, type): inserted, or updated when the data differ, or left
        alone. The first (oldest) of the author's plain annotations of a pair is the one compared, as on SQLite.
        Empties the stage; returns (created, updated, unchanged)."""
        row = (await session.execute(text(_UPSERT_ANNOTATIONS), target.params(now))).one()
        await session.execute(text("TRUNCATE import_annotations_stage"))
        staged, created, updated = int(row[0]), int(row[1]), int(row[2])
        return created, updated, staged - created - updated

    async def resolve_staged_parents(self, session: AsyncSession, target: StagedTarget) -> int:
        """The parents `insert_staged_items` did not find (named before they appear in the file), all at once;
        a parent found nowhere leaves `parent_id` null."""
        resolved = await session.execute(text(_RESOLVE_PARENTS), target.params(utcnow()))
        return int(resolved.scalar_one())


ITEM_STAGE_COLUMNS = ("id", "external_id", "content", "metadata", "sequence", "parent_id", "parent_external_id")
ANNOTATION_STAGE_COLUMNS = ("id", "item_id", "type", "data")

_STAGES = (
    "CREATE TEMPORARY TABLE import_items_stage (id uuid NOT NULL, external_id text NOT NULL, content text NOT NULL, "
    "metadata jsonb NOT NULL, sequence bigint NOT NULL, parent_id uuid, parent_external_id text) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE import_parents_stage (item_id uuid NOT NULL, parent_external_id text NOT NULL) "
    "ON COMMIT DROP",
    "CREATE TEMPORARY TABLE import_annotations_stage (id uuid NOT NULL, item_id uuid NOT NULL, type text NOT NULL, "
    "data jsonb NOT NULL) ON COMMIT DROP",
)


# The history and the change feed are written by the same statements as the rows, as CTEs (docs/versioning.md).
def _changes(resource_type: str, action: str, source: str, version: str = "NULL") -> str:
    return (
        "INSERT INTO changes (txid, project_id, resource_type, resource_id, container_id, action, version, "  # noqa: S608 - only constants  # nosec B608
        "changed_by, changed_at) "
        f"SELECT {PG_CURRENT_TXID}, CAST(:project_id AS uuid), '{resource_type}', id, CAST(:container_id AS uuid), "
        f"'{action}', {version}, CAST(:changed_by AS uuid), CAST(:now AS timestamptz) FROM {source}"
    )


def _revisions(action: str, source: str) -> str:
    return (
        "INSERT INTO annotation_revisions (annotation_id, version, container_id, item_id, action, type, data, "  # noqa: S608 - only constants  # nosec B608
        "start_offset, end_offset, is_gold, changed_by, changed_at) "
        f"SELECT id, version, CAST(:container_id AS uuid), item_id, '{action}', type, data, start_offset, end_offset, "
        f"is_gold, CAST(:changed_by AS uuid), CAST(:now AS timestamptz) FROM {source}"
    )


_INSERT_ITEMS = f"""
WITH inserted AS (
    INSERT INTO items (id, container_id, external_id, content, metadata, sequence, parent_id, schema_version,
        created_at, updated_at)
    SELECT s.id, :container_id, s.external_id, s.content, s.metadata, s.sequence,
        coalesce(s.parent_id, (
            SELECT known.id FROM items AS known
            WHERE known.container_id = :container_id AND known.external_id = s.parent_external_id
        )),
        :schema_version, :now, :now
    FROM import_items_stage AS s
    RETURNING id, parent_id
), changed AS ({_changes("item", "created", "inserted")} RETURNING 1
), later AS (
    INSERT INTO import_parents_stage (item_id, parent_external_id)
    SELECT s.id, s.parent_external_id
    FROM inserted JOIN import_items_stage AS s ON s.id = inserted.id
    WHERE inserted.parent_id IS NULL AND s.parent_external_id IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM later)
"""  # noqa: S608 - only this module's constants  # nosec B608

_INSERT_ANNOTATIONS = f"""
WITH created AS (
    INSERT INTO annotations (id, item_id, container_id, type, data, created_by, version, created_at, updated_at)
    SELECT s.id, s.item_id, :container_id, s.type, s.data, :author, 1, :now, :now FROM import_annotations_stage AS s
    RETURNING id, version, item_id, type, data, start_offset, end_offset, is_gold
), revised AS ({_revisions("created", "created")} RETURNING 1
), changed AS ({_changes("annotation", "created", "created", "1")} RETURNING 1
)
SELECT count(*) FROM created
"""  # noqa: S608 - only this module's constants  # nosec B608

_UPSERT_ANNOTATIONS = f"""
WITH found AS (
    SELECT DISTINCT ON (a.item_id, a.type) a.id, a.item_id, a.type
    FROM annotations AS a
    JOIN import_annotations_stage AS s ON s.item_id = a.item_id AND s.type = a.type
    WHERE a.created_by = :author AND a.start_offset IS NULL AND a.end_offset IS NULL
    ORDER BY a.item_id, a.type, a.id
), updated AS (
    UPDATE annotations AS a
    SET data = s.data, version = a.version + 1, updated_at = :now
    FROM found AS c
    JOIN import_annotations_stage AS s ON s.item_id = c.item_id AND s.type = c.type
    WHERE a.id = c.id AND a.data <> s.data
    RETURNING a.id, a.version, a.item_id, a.type, a.data, a.start_offset, a.end_offset, a.is_gold
), created AS (
    INSERT INTO annotations (id, item_id, container_id, type, data, created_by, version, created_at, updated_at)
    SELECT s.id, s.item_id, :container_id, s.type, s.data, :author, 1, :now, :now
    FROM import_annotations_stage AS s
    WHERE NOT EXISTS (SELECT 1 FROM found AS c WHERE c.item_id = s.item_id AND c.type = s.type)
    RETURNING id, version, item_id, type, data, start_offset, end_offset, is_gold
), revised_updated AS ({_revisions("updated", "updated")} RETURNING 1
), revised_created AS ({_revisions("created", "created")} RETURNING 1
), changed_updated AS ({_changes("annotation", "updated", "updated", "version")} RETURNING 1
), changed_created AS ({_changes("annotation", "created", "created", "1")} RETURNING 1
)
SELECT (SELECT count(*) FROM import_annotations_stage), (SELECT count(*) FROM created), (SELECT count(*) FROM updated)
"""  # noqa: S608 - only this module's constants  # nosec B608

_RESOLVE_PARENTS = f"""
WITH resolved AS (
    UPDATE items SET parent_id = parent.id
    FROM import_parents_stage AS wanted
    JOIN items AS parent ON parent.container_id = :container_id AND parent.external_id = wanted.parent_external_id
    WHERE items.id = wanted.item_id AND parent.id <> wanted.item_id
    RETURNING items.id
), changed AS ({_changes("item", "updated", "resolved")} RETURNING 1
)
SELECT count(*) FROM resolved
"""  # noqa: S608 - only this module's constants  # nosec B608


import_repository = ImportRepository()
