"""SQL for the audit trail: inserts and filtered, keyset-paginated reads. Nothing here updates or deletes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.schemas import AuditFilters
from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import AuditEvent, Membership, Role


class AuditRepository:
    keyset = Keyset(columns=(AuditEvent.id,), kinds=(uuid.UUID,))

    def _filtered(self, filters: AuditFilters, *, overseen_by: uuid.UUID | None) -> Select[Any]:
        """Events matching the filters; with `overseen_by`, only those of projects that user owns or manages."""
        statement = select(AuditEvent)
        if overseen_by is not None:
            overseen = select(Membership.project_id).where(
                Membership.user_id == overseen_by, Membership.role.in_((Role.owner.value, Role.manager.value))
            )
            statement = statement.where(AuditEvent.project_id.in_(overseen))
        conditions = {
            AuditEvent.project_id: filters.project_id,
            AuditEvent.actor_user_id: filters.actor_user_id,
            AuditEvent.action: filters.action,
            AuditEvent.resource_type: filters.resource_type,
            AuditEvent.resource_id: filters.resource_id,
        }
        for column, value in conditions.items():
            if value is not None:
                statement = statement.where(column == value)
        if filters.since is not None:
            statement = statement.where(AuditEvent.occurred_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(AuditEvent.occurred_at < filters.until)
        return statement

    async def page(
        self, session: AsyncSession, filters: AuditFilters, params: PageParams, *, overseen_by: uuid.UUID | None
    ) -> tuple[list[AuditEvent], str | None]:
        statement = self._filtered(filters, overseen_by=overseen_by)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession, filters: AuditFilters, *, overseen_by: uuid.UUID | None) -> int:
        subquery = self._filtered(filters, overseen_by=overseen_by).subquery()
        return int((await session.execute(select(func.count()).select_from(subquery))).scalar_one())


audit_repository = AuditRepository()
