"""`AnnotationReader`: the annotation in the path, visible to the caller (write rules live in the service);
`AnnotationHistoryReader`: its history, which managers can read after the annotation is deleted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from annotation_platform.annotation.service import (
    AnnotationAccess,
    HistoryAccess,
    annotation_service,
    annotations_page_cache_entry,
)
from annotation_platform.auth.dependencies import ApiKey, BearerToken, CurrentUser
from annotation_platform.container.dependencies import ContainerIdPath, read_container_page
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import parse_uuid, path_id
from annotation_platform.core.pagination import PageParamsDep
from annotation_platform.core.schemas import TypeSlug


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


@dataclass(frozen=True)
class AnnotationFilters:
    """The filters of a list of annotations. An author filter that is not an id cannot match any annotation."""

    type_: str | None
    author: uuid.UUID | None
    matches_nothing: bool


async def annotation_filters(
    type: Annotated[TypeSlug | None, Query(description="Only annotations of this type.")] = None,
    created_by: Annotated[str | None, Query(max_length=64, description="Only annotations by this user id.")] = None,
) -> AnnotationFilters:
    author = parse_uuid(created_by) if created_by is not None else None
    return AnnotationFilters(type_=type, author=author, matches_nothing=created_by is not None and author is None)


AnnotationFiltersDep = Annotated[AnnotationFilters, Depends(annotation_filters)]


async def container_annotations_page_reader(
    request: Request,
    container_id: ContainerIdPath,
    filters: AnnotationFiltersDep,
    page: PageParamsDep,
    session: SessionDep,
    token: BearerToken,
    api_key: ApiKey,
) -> ContainerAccess:
    """`ContainerReader` for the container's annotation page, with the page's cache entry read in the same
    round trip."""
    return await read_container_page(
        request,
        session,
        container_id,
        token,
        api_key,
        lambda container: annotations_page_cache_entry(
            container, page, container_id=container, type_=filters.type_, created_by=filters.author
        ),
    )


ContainerAnnotationsPageReader = Annotated[ContainerAccess, Depends(container_annotations_page_reader)]
