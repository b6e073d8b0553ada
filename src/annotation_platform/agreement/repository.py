"""SQL for agreement: every label of one type in a container (with its item's position and its author), the
fingerprint that tells whether they changed, the report cache, neighbouring items, gold annotations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, func, select, union_all
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.field_crypto import is_sealed_json, key_ring_of, open_data, open_item_row
from annotation_platform.models import AgreementResult, Annotation, Container, Item, Job, JobKind, JobStatus, User


@dataclass(frozen=True)
class ItemInContext:
    row: Any
    before: list[Any]
    after: list[Any]


class AgreementRepository:
    async def labels(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], type_: str
    ) -> dict[uuid.UUID, list[Any]]:
        """Each container's whole-item annotations (no offsets) of this type with a living author, by item order,
        oldest first. A sensitive project's data are opened here (rows then come as namespaces)."""
        statement = (
            select(
                Annotation.id,
                Annotation.container_id,
                Annotation.item_id,
                Item.sequence,
                Annotation.created_by,
                User.username,
                Annotation.is_gold,
                Annotation.data,
            )
            .join(Item, Item.id == Annotation.item_id)
            .join(User, User.id == Annotation.created_by)
            .where(
                Annotation.container_id.in_(list(container_ids)),
                Annotation.type == type_,
                Annotation.start_offset.is_(None),
            )
            .order_by(Item.sequence, Item.id, Annotation.id)
        )
        rows: list[Any] = list((await session.execute(statement)).all())
        if any(is_sealed_json(row.data) for row in rows[:1]):
            key_ring = key_ring_of(session)
            rows = [SimpleNamespace(**{**row._mapping, "data": open_data(key_ring, row.data, row.id)}) for row in rows]
        found: dict[uuid.UUID, list[Any]] = {container_id: [] for container_id in container_ids}
        for row in rows:
            found[row.container_id].append(row)
        return found

    async def fingerprints(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], type_: str
    ) -> dict[uuid.UUID, tuple[int, str]]:
        """For each container, how many annotations of this type it has, and a string that changes whenever any of
        them is created, changed or deleted (count, newest `updated_at`, sum of versions)."""
        statement = (
            select(Annotation.container_id, func.count(), func.max(Annotation.updated_at), func.sum(Annotation.version))
            .where(Annotation.container_id.in_(list(container_ids)), Annotation.type == type_)
            .group_by(Annotation.container_id)
        )
        found = {
            container_id: (int(count), f"{count}|{newest}|{versions}")
            for container_id, count, newest, versions in (await session.execute(statement)).all()
        }
        return {container_id: found.get(container_id, (0, "0|None|None")) for container_id in container_ids}

    async def cached(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], type_: str, options: str
    ) -> dict[uuid.UUID, AgreementResult]:
        statement = (
            select(AgreementResult)
            .where(
                AgreementResult.container_id.in_(list(container_ids)),
                AgreementResult.type == type_,
                AgreementResult.options == options,
            )
            .execution_options(populate_existing=True)
        )
        return {result.container_id: result for result in (await session.execute(statement)).scalars()}

    async def store(self, session: AsyncSession, reports: Sequence[dict[str, Any]]) -> None:
        """Insert or replace the reports (rows of `agreement_results`): two requests computing one at once both
        succeed, the last one wins."""
        builder = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = builder(AgreementResult).values(list(reports))
        statement = statement.on_conflict_do_update(
            index_elements=["container_id", "type", "options"],
            set_={name: statement.excluded[name] for name in ("fingerprint", "result", "computed_at")},
        )
        await session.execute(statement)

    async def containers(self, session: AsyncSession, project_id: uuid.UUID) -> list[Container]:
        statement = select(Container).where(Container.project_id == project_id).order_by(Container.name, Container.id)
        return list((await session.execute(statement)).scalars())

    async def container(self, session: AsyncSession, container_id: uuid.UUID) -> Container | None:
        return await session.get(Container, container_id)

    async def active_job(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        container_id: uuid.UUID | None,
        project_id: uuid.UUID,
        type_: str,
        options: str,
    ) -> Job | None:
        """The caller's queued or running agreement job for this report (a container's, or with no container the
        project's), if any."""
        statement = (
            select(Job)
            .where(
                Job.created_by == user_id,
                Job.kind == JobKind.agreement.value,
                Job.status.in_([JobStatus.queued.value, JobStatus.running.value]),
                Job.project_id == project_id,
            )
            .order_by(Job.id.desc())
        )
        for job in (await session.execute(statement)).scalars():
            params = job.params or {}
            wanted = (str(container_id) if container_id is not None else None, type_, options)
            if (params.get("container_id"), params.get("type"), params.get("options")) == wanted:
                return job
        return None

    async def items_in_context(
        self, session: AsyncSession, container_id: uuid.UUID, item_ids: Sequence[uuid.UUID], count: int
    ) -> dict[uuid.UUID, ItemInContext]:
        """These items of the container, each with up to `count` items just before and just after it, in order.

        One statement for a whole page (it cost two per item): the container's items are numbered in
        `(sequence, id)` order from their index, and those numbered within `count` of a wanted item are read. The
        numbering walks the container's index once, which the page's callers outdo by reading all its labels."""
        if not item_ids:
            return {}
        ordered = (
            select(Item.id, func.row_number().over(order_by=(Item.sequence, Item.id)).label("position"))
            .where(Item.container_id == container_id)
            .cte("ordered")
        )
        wanted = select(ordered.c.position).where(ordered.c.id.in_(list(item_ids))).cte("wanted")
        near = union_all(*(select(wanted.c.position + shift) for shift in range(-count, count + 1)))
        statement = (
            select(*_ITEM_COLUMNS, ordered.c.position)
            .join(ordered, ordered.c.id == Item.id)
            .where(ordered.c.position.in_(near if count else select(wanted.c.position)))
        )
        rows = {row.position: row for row in _opened(session, list((await session.execute(statement)).all()))}
        wanted_ids = set(item_ids)
        return {
            row.id: ItemInContext(
                row=row,
                before=[rows[n] for n in range(position - count, position) if n in rows],
                after=[rows[n] for n in range(position + 1, position + count + 1) if n in rows],
            )
            for position, row in rows.items()
            if row.id in wanted_ids
        }

    async def gold_count(self, session: AsyncSession, container_id: uuid.UUID, type_: str) -> int:
        statement = select(func.count()).where(
            Annotation.container_id == container_id, Annotation.type == type_, Annotation.is_gold.is_(True)
        )
        return int((await session.execute(statement)).scalar_one())

    async def gold_of_item(self, session: AsyncSession, item_id: uuid.UUID, type_: str) -> uuid.UUID | None:
        statement = select(Annotation.id).where(
            Annotation.item_id == item_id, Annotation.type == type_, Annotation.is_gold.is_(True)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def delete_gold(self, session: AsyncSession, container_id: uuid.UUID, type_: str) -> int:
        statement = delete(Annotation).where(
            Annotation.container_id == container_id, Annotation.type == type_, Annotation.is_gold.is_(True)
        )
        return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


_ITEM_COLUMNS = (Item.id, Item.external_id, Item.sequence, Item.content, Item.metadata_)


def _opened(session: AsyncSession, rows: list[Any]) -> list[Any]:
    """The rows, with a sensitive project's contents opened (as namespaces)."""
    if not any(is_sealed_json(row.metadata_) for row in rows):
        return rows
    key_ring = key_ring_of(session)
    return [SimpleNamespace(**open_item_row(key_ring, row)) for row in rows]


agreement_repository = AgreementRepository()
