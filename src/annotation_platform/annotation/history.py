"""The history of annotations deleted in SQL, shared by every path that deletes them that way (bulk deletes, an
item's delete taking its annotations, a gold set's delete)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.repository import annotation_repository
from annotation_platform.change.service import change_service


async def record_deletions(
    session: AsyncSession,
    annotations: Select[Any],
    *,
    project_id: uuid.UUID,
    changed_by: uuid.UUID | None,
    now: datetime,
) -> None:
    """A `deleted` revision and a change-feed entry for each annotation `annotations` selects (by id); call it
    just before they are deleted, in the same transaction."""
    await annotation_repository.insert_deletion_revisions(session, annotations, changed_by=changed_by, now=now)
    await change_service.record_from(
        session,
        annotation_repository.deletion_changes_of(annotations, project_id=project_id, changed_by=changed_by, now=now),
    )
