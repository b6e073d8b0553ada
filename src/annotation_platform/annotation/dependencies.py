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
from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.container.dependencies import ContainerIdPath, ContainerPage, read_container_page
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import parse_uuid, path_id
from annotation_platform.core.pagination import DEFAULT_LIMIT, IncludeTotal, PageCursor, PageLimit, PageParams
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


AnnotationType = Annotated[TypeSlug | None, Query(description="Only annotations of this type.")]
AnnotationAuthor = Annotated[str | None, Query(max_length=64, description="Only annotations by this user id.")]


async def annotation_filters(type: AnnotationType = None, created_by: AnnotationAuthor = None) -> AnnotationFilters:
    author = parse_uuid(created_by) if created_by is not None else None
    return AnnotationFilters(type_=type, author=author, matches_nothing=created_by is not None and author is None)


AnnotationFiltersDep = Annotated[AnnotationFilters, Depends(annotation_filters)]


@dataclass(frozen=True, slots=True)
class ContainerAnnotationsPage:
    """A container's annotation page: the read access, the page and the session, and the filters."""

    page: ContainerPage
    filters: AnnotationFilters


async def container_annotations_page_reader(
    request: Request,
    container_id: ContainerIdPath,
    type: AnnotationType = None,
    created_by: AnnotationAuthor = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
    include_total: IncludeTotal = False,
) -> ContainerAnnotationsPage:
    """`ContainerReader` for the container's annotation page, with the page's cache entry read in the same
    round trip; its parameters are declared here rather than by sub-dependencies (see `ContainerPage`)."""
    filters = await annotation_filters(type, created_by)
    params = PageParams(limit=limit, cursor=cursor, include_total=include_total)
    page = await read_container_page(
        request,
        container_id,
        params,
        lambda container: annotations_page_cache_entry(
            container, params, container_id=container, type_=filters.type_, created_by=filters.author
        ),
    )
    return ContainerAnnotationsPage(page=page, filters=filters)


ContainerAnnotationsPageReader = Annotated[ContainerAnnotationsPage, Depends(container_annotations_page_reader)]
