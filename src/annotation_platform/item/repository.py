"""SQL for items: keyset pages in `(sequence, id)` order, set-wise look-ups for bulk writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    Uuid,
    bindparam,
    delete,
    func,
    literal,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.cache import container_scope
from annotation_platform.core.field_crypto import key_ring_of, open_item_row, seal_item_values
from annotation_platform.core.pagination import Keyset, PageParams, decode_cursor, encode_cursor
from annotation_platform.core.sql import IN_LIST_CHUNK, insert_rows, rows_where_in
from annotation_platform.core.types import UTCDateTime
from annotation_platform.models import Annotation, Container, Item, Membership, User

READ_COLUMNS = (
    Item.id,
    Item.container_id,
    Item.external_id,
    Item.content,
    Item.metadata_,
    Item.sequence,
    Item.parent_id,
    Item.schema_version,
    Item.created_at,
    Item.updated_at,
)


# A page's statements, built once (their construction and cache key cost more than their execution): the first
# page, and the page after a cursor's `(sequence, id)`.
_PAGE = (
    select(*READ_COLUMNS)
    .where(Item.container_id == bindparam("container_id"))
    .order_by(Item.sequence, Item.id)
    .limit(bindparam("limit", type_=Integer()))
)
_PAGE_AFTER = _PAGE.where(
    tuple_(Item.sequence, Item.id)
    > tuple_(bindparam("after_sequence", type_=BigInteger()), bindparam("after_id", type_=Uuid()))
)


class ItemRepository:
    keyset = Keyset(columns=(Item.sequence, Item.id), kinds=(int, uuid.UUID))

    def with_role(self, user: User) -> Select[Any]:
        membership = (Membership.project_id == Container.project_id) & (Membership.user_id == user.id)
        return (
            select(Item, Membership.role, Container.project_id)
            .join(Container, Container.id == Item.container_id)
            .outerjoin(Membership, membership)
        )

    async def get_with_role(
        self, session: AsyncSession, item_id: uuid.UUID, user: User
    ) -> tuple[Item, str | None, uuid.UUID] | None:
        """The item, the caller's role in its project (None if not a member), and that project's id."""
        row = (await session.execute(self.with_role(user).where(Item.id == item_id))).first()
        return (row[0], row[1], row[2]) if row else None

    async def page(
        self, session: AsyncSession, container_id: uuid.UUID, params: PageParams, *, sensitive: bool = False
    ) -> tuple[list[Any], str | None]:
        """Plain rows (attributes named as `Item`'s), not ORM objects: a page costs no identity-map work. Rows of
        a sensitive project come opened, as dicts."""
        values: dict[str, Any] = {"container_id": container_id, "limit": params.limit + 1}
        statement = _PAGE
        if params.cursor is not None:
            values["after_sequence"], values["after_id"] = decode_cursor(params.cursor, self.keyset.kinds)
            statement = _PAGE_AFTER
        rows = list((await session.execute(statement, values)).all())
        cursor = None
        if len(rows) > params.limit:
            rows = rows[: params.limit]
            cursor = encode_cursor((rows[-1].sequence, rows[-1].id))
        return (self.opened(session, rows) if sensitive else rows), cursor

    def opened(self, session: AsyncSession, rows: Sequence[Any]) -> list[Any]:
        key_ring = key_ring_of(session)
        return [open_item_row(key_ring, row) for row in rows]

    async def ids_by_external_id(
        self, session: AsyncSession, container_id: uuid.UUID, external_ids: Sequence[str]
    ) -> dict[str, uuid.UUID]:
        statement = select(Item.external_id, Item.id).where(Item.container_id == container_id)
        rows = await rows_where_in(session, statement, Item.external_id, list(dict.fromkeys(external_ids)), String())
        return {row.external_id: row.id for row in rows}

    async def existing_ids(
        self, session: AsyncSession, container_id: uuid.UUID, item_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        statement = select(Item.id).where(Item.container_id == container_id)
        rows = await rows_where_in(session, statement, Item.id, list(dict.fromkeys(item_ids)), Uuid())
        return {row.id for row in rows}

    async def max_sequence(self, session: AsyncSession, container_id: uuid.UUID) -> int | None:
        statement = select(func.max(Item.sequence)).where(Item.container_id == container_id)
        return (await session.execute(statement)).scalar_one()

    async def insert_many(self, session: AsyncSession, rows: list[dict[str, Any]], *, sensitive: bool = False) -> None:
        scopes = {container_scope(container_id) for container_id in {row["container_id"] for row in rows}}
        await insert_rows(session, Item, self._sealed(session, rows) if sensitive else rows, scopes=scopes)

    async def read_many(
        self, session: AsyncSession, container_id: uuid.UUID, item_ids: list[uuid.UUID], *, sensitive: bool = False
    ) -> list[Any]:
        statement = select(*READ_COLUMNS).where(Item.container_id == container_id)
        rows = await rows_where_in(session, statement, Item.id, item_ids, Uuid())
        order = {item_id: index for index, item_id in enumerate(item_ids)}
        ordered = sorted(rows, key=lambda row: order[row.id])
        return self.opened(session, ordered) if sensitive else ordered

    async def update_metadata(
        self, session: AsyncSession, container_id: uuid.UUID, rows: list[dict[str, Any]], *, sensitive: bool = False
    ) -> None:
        """One executemany by primary key, kept inside the container."""
        statement = update(Item).where(Item.container_id == container_id)
        await session.execute(
            statement.execution_options(synchronize_session=None), self._sealed(session, rows) if sensitive else rows
        )

    def _sealed(self, session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key_ring = key_ring_of(session)
        return [seal_item_values(key_ring, row["id"], row) for row in rows]

    async def delete_many(self, session: AsyncSession, container_id: uuid.UUID, item_ids: list[uuid.UUID]) -> None:
        """Deletes the items (their annotations go with them); items that replied to them keep no parent."""
        for start in range(0, len(item_ids), IN_LIST_CHUNK):
            chunk = item_ids[start : start + IN_LIST_CHUNK]
            await session.execute(
                update(Item)
                .where(Item.container_id == container_id, Item.parent_id.in_(chunk))
                .values(parent_id=None)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(Item)
                .where(Item.container_id == container_id, Item.id.in_(chunk))
                .execution_options(synchronize_session=False)
            )

    def replies_changes_of(
        self,
        container_id: uuid.UUID,
        item_ids: list[uuid.UUID],
        *,
        project_id: uuid.UUID,
        changed_by: uuid.UUID | None,
        now: datetime,
    ) -> Select[Any]:
        """The `updated` change-feed entries of the replies (not themselves deleted) that lose these parents."""
        return select(
            literal(project_id, Uuid()),
            literal("item"),
            Item.id,
            Item.container_id,
            literal("updated"),
            null(),
            literal(changed_by, Uuid()),
            literal(now, UTCDateTime()),
        ).where(Item.container_id == container_id, Item.parent_id.in_(item_ids), Item.id.not_in(item_ids))

    async def detach_children(self, session: AsyncSession, item: Item) -> None:
        await session.execute(
            update(Item)
            .where(Item.parent_id == item.id, Item.container_id == item.container_id)
            .values(parent_id=None)
            .execution_options(synchronize_session=False)
        )

    async def delete(self, session: AsyncSession, item: Item) -> None:
        await session.delete(item)
        await session.flush()

    async def longest_annotation_end(self, session: AsyncSession, item_id: uuid.UUID) -> int | None:
        statement = select(func.max(Annotation.end_offset)).where(Annotation.item_id == item_id)
        return (await session.execute(statement)).scalar_one()


item_repository = ItemRepository()
