"""`AnnotationReader`: the annotation in the path, visible to the caller (write rules live in the service);
`AnnotationHistoryReader`: its history, which managers can read after the annotation is deleted."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from annotation_platform.annotation.service import AnnotationAccess, HistoryAccess, annotation_service
from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id


async def annotation_access(
    annotation_id: Annotated[str, Path(description="Annotation id.")],
    user: CurrentUser,
    session: SessionDep,
) -> AnnotationAccess:
    return await annotation_service.access(session, annotation_id=path_id(annotation_id, "annotation"), user=user)


AnnotationReader = Annotated[AnnotationAccess, Depends(annotation_access)]


async def annotation_history_access(
    annotation_id: Annotated[str, Path(description="Annotation id (also of a deleted annotation, for managers).")],
    user: CurrentUser,
    session: SessionDep,
) -> HistoryAccess:
    return await annotation_service.history_access(
        session, annotation_id=path_id(annotation_id, "annotation"), user=user
    )


AnnotationHistoryReader = Annotated[HistoryAccess, Depends(annotation_history_access)]
