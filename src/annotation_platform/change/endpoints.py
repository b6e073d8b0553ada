from __future__ import annotations

from fastapi import Request, Response

from annotation_platform.change.schemas import ChangeRead
from annotation_platform.change.service import change_service
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import LIST_ERRORS, problem_responses
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.project.dependencies import ProjectReader

router = ApiRouter(tags=["changes"])


@router.get(
    "/projects/{project_id}/changes",
    operation_id="listProjectChanges",
    response_model=Page[ChangeRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_project_changes(
    request: Request, access: ProjectReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """Created, updated and deleted containers, items and annotations in commit order; poll with `next_cursor`.

    `next_cursor` is always set: it is where to resume. `Link: rel="next"` is sent only while more changes are
    ready; an empty page means nothing new yet. A page stops before any change whose transaction may still be
    overtaken by an earlier one, so a change committed late is never skipped."""
    changes, cursor, more, total = await change_service.page(session, access=access, params=page)
    return page_response(request, changes, cursor, total, settings.public_base_url, has_next=more)
