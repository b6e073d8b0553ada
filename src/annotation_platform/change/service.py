"""The change feed: every write to a project's containers, items and annotations adds entries in its own
transaction; clients poll the feed with a cursor to stay in sync (docs/versioning.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.context import context_of
from annotation_platform.change.repository import change_repository
from annotation_platform.change.schemas import ChangeRead
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.types import utcnow
from annotation_platform.project.service import ProjectAccess

ResourceType = Literal["container", "item", "annotation"]
ChangeAction = Literal["created", "updated", "deleted"]


class ChangeService:
    async def record(
        self,
        session: AsyncSession,
        *,
        project_id: uuid.UUID,
        resource_type: ResourceType,
        action: ChangeAction,
        entries: Iterable[tuple[uuid.UUID, uuid.UUID | None, int | None]],
        changed_by: uuid.UUID | None = None,
    ) -> None:
        """One entry per (resource id, container id, version), by `changed_by` or else the unit of work's actor
        (a worker's job has no request: it names the user who started it)."""
        changed_by = changed_by or context_of(session).user_id
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {
                "project_id": project_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "container_id": container_id,
                "action": action,
                "version": version,
                "changed_by": changed_by,
                "changed_at": now,
            }
            for resource_id, container_id, version in entries
        ]
        await change_repository.insert_many(session, rows)

    async def record_from(self, session: AsyncSession, rows: Select[Any]) -> None:
        """Entries from a query (`CHANGE_COLUMNS` and `changed_at`), for writes that touch many rows at once."""
        await change_repository.insert_from(session, rows)

    async def page(
        self, session: AsyncSession, *, access: ProjectAccess, params: PageParams
    ) -> tuple[list[ChangeRead], str, bool, int | None]:
        changes, cursor, more, total = await change_repository.page(session, access.project.id, params)
        return [ChangeRead.model_validate(change) for change in changes], cursor, more, total


change_service = ChangeService()
