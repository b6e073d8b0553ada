"""SQL for annotations: pages by id (creation order) per item or per container, with filters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, Uuid, bindparam, delete, false, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.cache import annotation_scope
from annotation_platform.core.field_crypto import is_sealed_json, key_ring_of, open_content, seal_data
from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.core.sql import IN_LIST_CHUNK, insert_rows, rows_where_in
from annotation_platform.core.types import UTCDateTime
from annotation_platform.models import Annotation, AnnotationRevision, Container, Item, Membership, Project, User

REVISION_CONTENT = ("type", "data", "start_offset", "end_offset", "is_gold")
"""The columns a revision copies from the annotation."""
_CONTENT_DEFAULTS: dict[str, Any] = {"start_offset": None, "end_offset": None, "is_gold": False}


def first_revisions(
    rows: list[dict[str, Any]], *, changed_by: uuid.UUID | None, changed_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Version 1 (`created`) of freshly written annotation rows, for `insert_revisions`: every write path that
    creates annotations (the API, imports, restores) starts their history the same way. A row without an offset or
    gold column has that column's default; without `changed_at`, each row's own `created_at` counts."""
    return [
        {
            "annotation_id": row["id"],
            "version": 1,
            "container_id": row["container_id"],
            "item_id": row["item_id"],
            "action": "created",
            **{
                column: row.get(column, _CONTENT_DEFAULTS[column]) if column in _CONTENT_DEFAULTS else row[column]
                for column in REVISION_CONTENT
            },
            "changed_by": changed_by,
            "changed_at": changed_at if changed_at is not None else row["created_at"],
        }
        for row in rows
    ]


class AnnotationRepository:
    keyset = Keyset(columns=(Annotation.id,), kinds=(uuid.UUID,))
    revision_keyset = Keyset(columns=(AnnotationRevision.version,), kinds=(int,))

    def with_role(self, user: User) -> Select[Any]:
        membership = (Membership.project_id == Container.project_id) & (Membership.user_id == user.id)
        return (
            select(Annotation, Membership.role, Container.project_id, Project.require_if_match)
            .join(Container, Container.id == Annotation.container_id)
            .join(Project, Project.id == Container.project_id)
            .outerjoin(Membership, membership)
        )

    async def get_with_role(
        self, session: AsyncSession, annotation_id: uuid.UUID, user: User
    ) -> tuple[Annotation, str | None, uuid.UUID, bool] | None:
        """The annotation, the caller's role in its project (None if not a member), that project's id, and
        whether the project makes If-Match mandatory."""
        row = (await session.execute(self.with_role(user).where(Annotation.id == annotation_id))).first()
        return (row[0], row[1], row[2], bool(row[3])) if row else None

    async def deleted_with_role(
        self, session: AsyncSession, annotation_id: uuid.UUID, user: User
    ) -> tuple[str | None] | None:
        """For an annotation that no longer exists but has a history: (the caller's role in its project,)."""
        membership = (Membership.project_id == Container.project_id) & (Membership.user_id == user.id)
        statement = (
            select(Membership.role)
            .select_from(AnnotationRevision)
            .join(Container, Container.id == AnnotationRevision.container_id)
            .outerjoin(Membership, membership)
            .where(AnnotationRevision.annotation_id == annotation_id)
            .limit(1)
        )
        row = (await session.execute(statement)).first()
        return (row[0],) if row else None

    async def revisions(
        self, session: AsyncSession, annotation_id: uuid.UUID, params: PageParams
    ) -> tuple[list[AnnotationRevision], str | None, int | None]:
        statement = select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation_id)
        rows, cursor = await fetch_page(session, statement, self.revision_keyset, params, lambda r: (r[0].version,))
        total = None
        if params.include_total:
            counted = select(func.count()).select_from(statement.subquery())
            total = int((await session.execute(counted)).scalar_one())
        return [row[0] for row in rows], cursor, total

    async def revision(
        self, session: AsyncSession, annotation_id: uuid.UUID, version: int
    ) -> AnnotationRevision | None:
        return await session.get(AnnotationRevision, (annotation_id, version))

    async def insert_revisions(
        self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False
    ) -> None:
        rows = self._sealed(session, rows, "annotation_id") if sensitive else rows
        await insert_rows(session, AnnotationRevision, rows, scopes=set())

    def _sealed(self, session: AsyncSession, rows: list[dict[str, Any]], id_key: str = "id") -> list[dict[str, Any]]:
        """The rows with `data` sealed to the annotation (rows whose data is sealed already are kept)."""
        key_ring = key_ring_of(session)
        return [row if is_sealed_json(row.get("data")) else seal_data(key_ring, row, id_key=id_key) for row in rows]

    def ids_in(self, container_id: uuid.UUID, annotation_ids: list[uuid.UUID]) -> Select[Any]:
        return select(Annotation.id).where(Annotation.container_id == container_id, Annotation.id.in_(annotation_ids))

    def ids_on_items(self, container_id: uuid.UUID, item_ids: list[uuid.UUID]) -> Select[Any]:
        return select(Annotation.id).where(Annotation.container_id == container_id, Annotation.item_id.in_(item_ids))

    def gold_ids(self, container_id: uuid.UUID, type_: str) -> Select[Any]:
        return select(Annotation.id).where(
            Annotation.container_id == container_id, Annotation.type == type_, Annotation.is_gold.is_(True)
        )

    async def insert_revisions_of_current(
        self,
        session: AsyncSession,
        annotation_ids: list[uuid.UUID],
        *,
        action: str,
        changed_by: uuid.UUID | None,
        now: datetime,
    ) -> None:
        """One executemany of INSERT … SELECT: a revision of each annotation as it now is, read in the database."""
        if not annotation_ids:
            return
        values = select(
            Annotation.id,
            Annotation.version,
            Annotation.container_id,
            Annotation.item_id,
            literal(action),
            *(getattr(Annotation, column) for column in REVISION_CONTENT),
            literal(changed_by, Uuid()),
            literal(now, UTCDateTime()),
        ).where(Annotation.id == bindparam("target", type_=Uuid()))
        columns = ["annotation_id", "version", "container_id", "item_id", "action", *REVISION_CONTENT]
        statement = insert(AnnotationRevision).from_select([*columns, "changed_by", "changed_at"], values)
        # Core, not the ORM's bulk insert, which takes a list of parameters for rows of values.
        connection = await session.connection()
        await connection.execute(statement, [{"target": annotation_id} for annotation_id in annotation_ids])

    async def insert_deletion_revisions(
        self, session: AsyncSession, annotations: Select[Any], *, changed_by: uuid.UUID | None, now: datetime
    ) -> None:
        """INSERT … SELECT: a `deleted` revision (the version after the last, with the last content) for each
        annotation `annotations` selects (by id), written just before they are deleted together."""
        values = select(
            Annotation.id,
            Annotation.version + 1,
            Annotation.container_id,
            Annotation.item_id,
            literal("deleted"),
            *(getattr(Annotation, column) for column in REVISION_CONTENT),
            literal(changed_by, Uuid()),
            literal(now, UTCDateTime()),
        ).where(Annotation.id.in_(annotations))
        columns = ["annotation_id", "version", "container_id", "item_id", "action", *REVISION_CONTENT]
        await session.execute(insert(AnnotationRevision).from_select([*columns, "changed_by", "changed_at"], values))

    def deletion_changes_of(
        self, annotations: Select[Any], *, project_id: uuid.UUID, changed_by: uuid.UUID | None, now: datetime
    ) -> Select[Any]:
        """The change-feed entries (`CHANGE_COLUMNS`, `changed_at`) of deleting the annotations the query selects."""
        return select(
            literal(project_id, Uuid()),
            literal("annotation"),
            Annotation.id,
            Annotation.container_id,
            literal("deleted"),
            Annotation.version + 1,
            literal(changed_by, Uuid()),
            literal(now, UTCDateTime()),
        ).where(Annotation.id.in_(annotations))

    def _filtered(
        self,
        *,
        item_id: uuid.UUID | None,
        container_id: uuid.UUID | None,
        type_: str | None,
        created_by: uuid.UUID | None,
    ) -> Select[Any]:
        statement = select(Annotation)
        if item_id is not None:
            statement = statement.where(Annotation.item_id == item_id)
        if container_id is not None:
            statement = statement.where(Annotation.container_id == container_id)
        if type_ is not None:
            statement = statement.where(Annotation.type == type_)
        if created_by is not None:
            statement = statement.where(Annotation.created_by == created_by)
        return statement

    async def page(
        self,
        session: AsyncSession,
        params: PageParams,
        *,
        item_id: uuid.UUID | None = None,
        container_id: uuid.UUID | None = None,
        type_: str | None = None,
        created_by: uuid.UUID | None = None,
    ) -> tuple[list[Annotation], str | None, int | None]:
        statement = self._filtered(item_id=item_id, container_id=container_id, type_=type_, created_by=created_by)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        total = None
        if params.include_total:
            counted = select(func.count()).select_from(statement.subquery())
            total = int((await session.execute(counted)).scalar_one())
        return [row[0] for row in rows], cursor, total

    async def items_by_ref(
        self,
        session: AsyncSession,
        container_id: uuid.UUID,
        *,
        ids: list[uuid.UUID],
        external_ids: list[str],
        sensitive: bool = False,
    ) -> tuple[dict[uuid.UUID, int], dict[str, tuple[uuid.UUID, int]]]:
        """Content lengths of the referenced items of this container, by id and by external id. A sensitive
        project's contents are sealed, so they are read and opened here instead of measured in SQL."""
        if sensitive:
            statement = select(Item.id, Item.external_id, Item.content, Item.metadata_)
        else:
            statement = select(Item.id, Item.external_id, func.length(Item.content))
        statement = statement.where(Item.container_id == container_id)
        found: list[Any] = [
            *await rows_where_in(session, statement, Item.id, list(set(ids)), Uuid()),
            *await rows_where_in(session, statement, Item.external_id, list(set(external_ids)), String()),
        ]
        if sensitive:
            key_ring = key_ring_of(session)
            found = [(row[0], row[1], len(open_content(key_ring, row[2], row[3], row[0]))) for row in found]
        wanted_ids, wanted_external_ids = set(ids), set(external_ids)
        by_id = {row[0]: row[2] for row in found if row[0] in wanted_ids}
        by_external_id = {row[1]: (row[0], row[2]) for row in found if row[1] in wanted_external_ids}
        return by_id, by_external_id

    async def authorship(
        self, session: AsyncSession, container_id: uuid.UUID, annotation_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, Any]:
        """Author, gold mark, version, type and data of those annotations that are in the container, locked for
        the change: their rows on PostgreSQL; on SQLite the database's one write lock is taken before they are
        read (the driver would read outside a transaction), so that a concurrent bulk change commits before
        this read or waits until this one commits, and the versions read here are the ones written over."""
        if session.get_bind().dialect.name == "sqlite":
            no_rows = update(Annotation).where(false()).values(version=Annotation.version)
            await session.execute(no_rows.execution_options(synchronize_session=False))
        statement = (
            select(Annotation.id, Annotation.created_by, Annotation.is_gold, Annotation.version, Annotation.type)
            .add_columns(Annotation.data)
            .where(Annotation.container_id == container_id)
            .with_for_update()
        )
        rows = await rows_where_in(session, statement, Annotation.id, list(dict.fromkeys(annotation_ids)), Uuid())
        return {row.id: row for row in rows}

    async def update_many(
        self, session: AsyncSession, container_id: uuid.UUID, rows: list[dict[str, Any]], *, sensitive: bool = False
    ) -> None:
        """One executemany by primary key, kept inside the container."""
        statement = update(Annotation).where(Annotation.container_id == container_id)
        await session.execute(
            statement.execution_options(synchronize_session=None), self._sealed(session, rows) if sensitive else rows
        )

    async def read_many(
        self, session: AsyncSession, container_id: uuid.UUID, annotation_ids: list[uuid.UUID]
    ) -> list[Annotation]:
        statement = select(Annotation).where(Annotation.container_id == container_id)
        rows = await rows_where_in(session, statement, Annotation.id, annotation_ids, Uuid())
        order = {annotation_id: index for index, annotation_id in enumerate(annotation_ids)}
        return sorted((row[0] for row in rows), key=lambda annotation: order[annotation.id])

    async def delete_many(
        self, session: AsyncSession, container_id: uuid.UUID, annotation_ids: list[uuid.UUID]
    ) -> None:
        for start in range(0, len(annotation_ids), IN_LIST_CHUNK):
            await session.execute(
                delete(Annotation)
                .where(
                    Annotation.container_id == container_id,
                    Annotation.id.in_(annotation_ids[start : start + IN_LIST_CHUNK]),
                )
                .execution_options(synchronize_session=False)
            )

    async def gold_of_item(self, session: AsyncSession, item_id: uuid.UUID, type_: str) -> uuid.UUID | None:
        statement = select(Annotation.id).where(
            Annotation.item_id == item_id, Annotation.type == type_, Annotation.is_gold.is_(True)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def content_length(self, session: AsyncSession, item_id: uuid.UUID, *, sensitive: bool = False) -> int:
        if sensitive:
            row = (await session.execute(select(Item.content, Item.metadata_).where(Item.id == item_id))).one()
            return len(open_content(key_ring_of(session), row[0], row[1], item_id))
        statement = select(func.length(Item.content)).where(Item.id == item_id)
        return int((await session.execute(statement)).scalar_one())

    async def insert_many(self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False) -> None:
        scopes = {annotation_scope(container_id) for container_id in {row["container_id"] for row in rows}}
        await insert_rows(session, Annotation, self._sealed(session, rows) if sensitive else rows, scopes=scopes)

    async def update_if_version(
        self,
        session: AsyncSession,
        annotation: Annotation,
        *,
        expected_version: int,
        values: dict[str, Any],
        sensitive: bool = False,
    ) -> bool:
        """Writes only if nobody changed the row since it was read; False when someone did."""
        if sensitive:
            values = self._sealed(session, [{**values, "id": annotation.id}])[0]
            values.pop("id")
        result = await session.execute(
            update(Annotation)
            .where(Annotation.id == annotation.id, Annotation.version == expected_version)
            .values(**values, version=expected_version + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def lock_newest(self, session: AsyncSession, annotation_id: uuid.UUID) -> Annotation | None:
        """The annotation as last committed, its row locked until the transaction ends (on PostgreSQL; SQLite's
        writer already holds the database's one write lock); the identity map's object is refreshed in place."""
        statement = (
            select(Annotation)
            .where(Annotation.id == annotation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def delete_if_version(self, session: AsyncSession, annotation: Annotation, *, expected_version: int) -> bool:
        result = await session.execute(
            delete(Annotation)
            .where(Annotation.id == annotation.id, Annotation.version == expected_version)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


annotation_repository = AnnotationRepository()
