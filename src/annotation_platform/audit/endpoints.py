from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from annotation_platform.audit.schemas import AuditEventRead, AuditFilters
from annotation_platform.audit.service import audit_service
from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import LIST_ERRORS, Forbidden, NotFound, problem_responses
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter

router = ApiRouter(prefix="/audit-events", tags=["audit"])


@router.get(
    "",
    operation_id="listAuditEvents",
    response_model=Page[AuditEventRead],
    responses=problem_responses(*LIST_ERRORS, Forbidden, NotFound),
)
async def list_audit_events(
    request: Request,
    filters: Annotated[AuditFilters, Query()],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    page: PageParamsDep,
) -> Response:
    """Who did what to which resource, when and from where, oldest first. Superusers see everything; owners
    and managers see the events of their projects. Filters: `project_id`, `actor_user_id`, `action`,
    `resource_type`, `resource_id`, and the time range `since` (inclusive) to `until` (exclusive)."""
    events, cursor, total = await audit_service.page(session, user=user, filters=filters, params=page)
    return page_response(request, events, cursor, total, settings.public_base_url)
