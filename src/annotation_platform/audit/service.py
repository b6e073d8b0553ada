"""Recording what happened: `record` adds the event to the caller's unit of work, so it commits (or rolls
back) with the change it describes; `record_now` commits at once, for security events about requests that
fail (a wrong password changes nothing, yet must be on record)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.alerts import ALERT_TASK, ALERTING_ACTIONS
from annotation_platform.audit.context import AuditContext, context_of
from annotation_platform.audit.repository import audit_repository
from annotation_platform.audit.schemas import AuditEventRead, AuditFilters
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.queue import QUEUE_INFO_KEY, enqueue_after_commit
from annotation_platform.core.types import utcnow
from annotation_platform.models import AuditEvent, User
from annotation_platform.project.permissions import Action, authorize_found
from annotation_platform.project.repository import project_repository

# Never written to the trail, whatever the resource.
SECRET_FIELDS = frozenset(
    {"password", "current_password", "hashed_password", "secret_hash", "key", "token", "token_hash", "access_token"}
)


def email_hash(email: str) -> str:
    """How the trail names an email address: a hash, so that it outlives neither the account nor a change of
    address in clear, yet one address always gives the same value (to match failed logins and changes)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]


def _plain(value: Any) -> Any:
    """JSON-ready values: ids and times as strings, models as dicts."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items() if key not in SECRET_FIELDS}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def changed_fields(before: Any, after: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ between two snapshots (models or dicts), as (before, after); `updated_at`, which
    every change moves, is left out."""
    old, new = _plain(before), _plain(after)
    keys = [key for key in new if key != "updated_at" and old.get(key) != new.get(key)]
    return {key: old.get(key) for key in keys}, {key: new[key] for key in keys}


def _event(
    context: AuditContext,
    *,
    action: str,
    resource_type: str,
    resource_id: Any,
    project_id: uuid.UUID | None,
    before: Any,
    after: Any,
) -> AuditEvent:
    return AuditEvent(
        id=uuid7(),
        occurred_at=utcnow(),
        actor_user_id=context.user_id,
        actor_api_key_id=context.api_key_id,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        project_id=project_id,
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
        ip=context.ip,
        user_agent=context.user_agent,
        request_id=context.request_id,
    )


class AuditService:
    def record(
        self,
        session: AsyncSession,
        *,
        action: str,
        resource_type: str,
        resource_id: Any = None,
        project_id: uuid.UUID | None = None,
        before: Any = None,
        after: Any = None,
        actor_user_id: uuid.UUID | None = None,
    ) -> None:
        """Add an event to this unit of work (written at its commit, gone with its rollback). `actor_user_id`
        names the actor when the request had none yet (a login). Security events also send an alert, after the
        commit."""
        context = context_of(session)
        if actor_user_id is not None:
            context = replace(context, user_id=actor_user_id)
        event = _event(
            context,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            project_id=project_id,
            before=before,
            after=after,
        )
        session.add(event)
        if action in ALERTING_ACTIONS:
            enqueue_after_commit(session, ALERT_TASK, str(event.id))

    async def record_now(
        self,
        session: AsyncSession,
        *,
        action: str,
        resource_type: str,
        resource_id: Any = None,
        after: Any = None,
    ) -> None:
        """Write an event in a transaction of its own (beside `session`'s, on the same database), committed
        before the caller's request fails."""
        context = context_of(session)
        event = _event(
            context,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            project_id=None,
            before=None,
            after=after,
        )
        # The queue rides along, so that an alert is sent once this transaction commits.
        separate = AsyncSession(session.bind, info={QUEUE_INFO_KEY: session.info.get(QUEUE_INFO_KEY)})
        async with separate as own, own.begin():
            own.add(event)
            if action in ALERTING_ACTIONS:
                enqueue_after_commit(own, ALERT_TASK, str(event.id))

    async def page(
        self, session: AsyncSession, *, user: User, filters: AuditFilters, params: PageParams
    ) -> tuple[list[AuditEventRead], str | None, int | None]:
        """Superusers see every event; others see the events of projects they own or manage (one project with
        `project_id`: 404 when they are not a member, 403 below manager)."""
        overseen_by: uuid.UUID | None = None
        if not user.acts_as_superuser:
            overseen_by = user.id
            if filters.project_id is not None:
                found = await project_repository.get_with_role(session, filters.project_id, user)
                authorize_found(found, user, Action.manage, "project")
        events, cursor = await audit_repository.page(session, filters, params, overseen_by=overseen_by)
        total = (
            await audit_repository.count(session, filters, overseen_by=overseen_by) if params.include_total else None
        )
        return [AuditEventRead.model_validate(event) for event in events], cursor, total


audit_service = AuditService()
