"""Annotation webhook events, shared by every path that changes annotations (the annotation service, item
deletes, gold-set deletes): one event per request, with every annotation it touched."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.schemas import AnnotationRead
from annotation_platform.models import Annotation
from annotation_platform.webhook.events import ANNOTATION_DELETED, emit


def event_data(annotations: list[AnnotationRead]) -> dict[str, Any]:
    """A webhook event's data: every annotation of the request (one event per request, bulk included)."""
    return {
        "count": len(annotations),
        "annotations": [annotation.model_dump(mode="json") for annotation in annotations],
    }


async def emit_deleted_with(session: AsyncSession, project_id: uuid.UUID, selections: Sequence[Select[Any]]) -> None:
    """`annotation.deleted` for the annotations that something else's delete takes with it (an item, a gold set),
    each as it was: call before the delete. `selections` select annotation ids (several for IN lists in chunks).
    Nothing is read unless a webhook of the project wants the event, and nothing is sent when none went."""

    async def data() -> dict[str, Any] | None:
        gone: list[AnnotationRead] = []
        for selected in selections:
            statement = select(Annotation).where(Annotation.id.in_(selected)).order_by(Annotation.id)
            gone += [AnnotationRead.model_validate(a) for a in (await session.execute(statement)).scalars()]
        return event_data(gone) if gone else None

    await emit(session, project_id, ANNOTATION_DELETED, data)
