"""SQL for key rotation: the encrypted values of each column counted by key id, read in keyset batches, and
written back only where they did not change meanwhile.

A token reads `enc:v1:<key id>:...`; in a JSON column it is a JSON string, read as text with `#>> '{}'`
(PostgreSQL) or `json_extract(column, '$')` (SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, Text, bindparam, func, literal_column, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.crypto import PREFIX
from annotation_platform.models import (
    Annotation,
    AnnotationRevision,
    Item,
    Job,
    JobKind,
    JobStatus,
    ProjectVersion,
    Webhook,
    WebhookDelivery,
)


@dataclass(frozen=True)
class Target:
    """One column that may hold tokens; `context_of` makes a row's associated data from its key values."""

    table: Table
    column: str
    key: tuple[str, ...]
    json: bool
    context: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


TARGETS = (
    Target(_table(Item), "content", ("id",), False, "items.content:{id}"),
    Target(_table(Item), "metadata", ("id",), True, "items.metadata:{id}"),
    Target(_table(Annotation), "data", ("id",), True, "annotations.data:{id}"),
    Target(_table(AnnotationRevision), "data", ("annotation_id", "version"), True, "annotations.data:{annotation_id}"),
    Target(_table(WebhookDelivery), "payload", ("id",), False, "webhook_deliveries.payload:{id}"),
    Target(_table(Webhook), "secret", ("id",), False, "webhooks.secret:{id}"),
    Target(_table(Webhook), "previous_secret", ("id",), False, "webhooks.previous_secret:{id}"),
)


class KeyRotationRepository:
    def _text(self, session: AsyncSession, target: Target) -> ColumnElement[Any]:
        column: Column[Any] = target.table.c[target.column]
        if not target.json:
            return column
        if session.get_bind().dialect.name == "postgresql":
            return column.op("#>>", return_type=Text())(literal_column("'{}'"))
        return func.json_extract(column, "$")

    def _key_id(self, session: AsyncSession, text: ColumnElement[Any]) -> ColumnElement[Any]:
        if session.get_bind().dialect.name == "postgresql":
            return func.split_part(text, ":", 3)
        rest = func.substr(text, len(PREFIX) + 1)
        return func.substr(rest, 1, func.instr(rest, ":") - 1)

    async def counts(self, session: AsyncSession, target: Target) -> dict[str, int]:
        """How many values of the column each key id encrypted."""
        text = self._text(session, target)
        key_id = self._key_id(session, text).label("key_id")
        statement = (
            select(key_id, func.count())
            .select_from(target.table)
            .where(text.startswith(PREFIX, autoescape=True))
            .group_by(key_id)
        )
        return {str(row[0]): int(row[1]) for row in await session.execute(statement)}

    async def stale(
        self, session: AsyncSession, target: Target, current_key_id: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[Any]:
        """Up to `limit` rows after `after` (in key order) whose value a key other than the current one made:
        their key values and the token as text (`token`)."""
        text = self._text(session, target)
        key = [target.table.c[name] for name in target.key]
        statement = (
            select(*key, text.label("token"))
            .where(
                text.startswith(PREFIX, autoescape=True),
                ~text.startswith(f"{PREFIX}{current_key_id}:", autoescape=True),
            )
            .order_by(*key)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(tuple_(*key) > tuple_(*after))
        return list((await session.execute(statement)).all())

    async def replace(self, session: AsyncSession, target: Target, rows: Sequence[dict[str, Any]]) -> int:
        """Writes each row's `new` value where the column still holds its `old` token (a write since the batch
        was read wins); how many were written."""
        if not rows:
            return 0
        text = self._text(session, target)
        conditions = [target.table.c[name] == bindparam(f"k_{name}") for name in target.key]
        statement = (
            update(target.table)
            .where(*conditions, text == bindparam("old"))
            .values({target.column: bindparam("new", type_=target.table.c[target.column].type)})
        )
        params = [
            {**{f"k_{name}": row[name] for name in target.key}, "old": row["old"], "new": row["new"]} for row in rows
        ]
        connection = await session.connection()
        result = await connection.execute(statement, params)
        # Some drivers cannot count the rows of an executemany (-1): then the batch's size is reported.
        return int(result.rowcount) if result.rowcount >= 0 else len(params)

    async def sealed_files(self, session: AsyncSession) -> list[tuple[str, str, Any]]:
        """The stored files that may be sealed: version snapshots and the files of succeeded exports, as
        (kind, storage name, owner id: the version's or the job's)."""
        versions = select(ProjectVersion.storage_key, ProjectVersion.id).where(ProjectVersion.storage_key.is_not(None))
        found: list[tuple[str, str, Any]] = [
            ("snapshot", str(row[0]), row[1]) for row in await session.execute(versions)
        ]
        exports = select(Job.id, Job.result).where(
            Job.kind == JobKind.export.value, Job.status == JobStatus.succeeded.value
        )
        for row in await session.execute(exports):
            result = row[1] or {}
            if result.get("file") and not result.get("expired"):
                found.append(("export", str(result["file"]), row[0]))
        return found


key_rotation_repository = KeyRotationRepository()
