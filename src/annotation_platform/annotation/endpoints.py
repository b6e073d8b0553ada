from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Header, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.dependencies import (
    AnnotationFilters,
    AnnotationFiltersDep,
    AnnotationHistoryReader,
    AnnotationReader,
    ContainerAnnotationsPageReader,
)
from annotation_platform.annotation.schemas import (
    AnnotationBulkCreate,
    AnnotationBulkRead,
    AnnotationBulkUpdate,
    AnnotationCreate,
    AnnotationRead,
    AnnotationRevert,
    AnnotationRevisionRead,
    AnnotationUpdate,
)
from annotation_platform.annotation.service import (
    ConcurrentChange,
    GoldAlreadySettled,
    OffsetsOutOfRange,
    UnknownVersion,
    annotation_service,
    etag_of,
)
from annotation_platform.auth.dependencies import CREDENTIALS, CurrentUser
from annotation_platform.config import SettingsDep, settings_from
from annotation_platform.container.dependencies import ContainerAnnotator
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    LIST_ERRORS,
    Forbidden,
    NotAuthenticated,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParams, PageParamsDep, json_page_response, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.core.schemas import BulkIds
from annotation_platform.item.dependencies import ItemAnnotator, ItemReader
from annotation_platform.item.service import BulkRowsInvalid

router = ApiRouter(tags=["annotations"])

_BODY_ERRORS = (*BODY_ERRORS, OffsetsOutOfRange)

IfMatch = Annotated[
    str | None,
    Header(
        max_length=256,
        description="The ETag you last read; 412 if it changed. Mandatory (428) in projects with `require_if_match`.",
    ),
]
_WRITE_ERRORS = (NotAuthenticated, Forbidden, NotFound, PreconditionFailed, PreconditionRequired, ConcurrentChange)
_ETAG_HEADER = {"ETag": {"description": "The annotation's version, for `If-Match`.", "schema": {"type": "string"}}}


async def _page(
    request: Request,
    session: AsyncSession,
    page: PageParams,
    filters: AnnotationFilters,
    *,
    scope_container_id: uuid.UUID,
    item_id: uuid.UUID | None = None,
    container_id: uuid.UUID | None = None,
) -> Response:
    if filters.matches_nothing:
        return page_response(request, [], None, 0 if page.include_total else None)
    body, cursor = await annotation_service.page(
        session,
        page,
        scope_container_id=scope_container_id,
        type_=filters.type_,
        created_by=filters.author,
        item_id=item_id,
        container_id=container_id,
    )
    return json_page_response(request, body, cursor, settings_from(request).public_base_url)


@router.get(
    "/items/{item_id}/annotations",
    operation_id="listItemAnnotations",
    response_model=Page[AnnotationRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_item_annotations(
    request: Request,
    access: ItemReader,
    session: SessionDep,
    filters: AnnotationFiltersDep,
    page: PageParamsDep,
) -> Response:
    """The item's annotations, oldest first."""
    return await _page(
        request,
        session,
        page,
        filters,
        scope_container_id=access.item.container_id,
        item_id=access.item.id,
    )


@router.post(
    "/items/{item_id}/annotations",
    operation_id="createAnnotation",
    status_code=status.HTTP_201_CREATED,
    response_model=AnnotationRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, *_BODY_ERRORS, GoldAlreadySettled),
)
async def create_annotation(
    body: AnnotationCreate, access: ItemAnnotator, user: CurrentUser, session: SessionDep, response: Response
) -> AnnotationRead:
    """Annotate an item as the caller (annotators and above); `is_gold: true` settles its gold answer (reviewers)."""
    annotation = await annotation_service.create(session, access=access, user=user, data=body)
    response.headers["Location"] = f"/api/v1/annotations/{annotation.id}"
    response.headers["ETag"] = etag_of(annotation)
    return annotation


@router.get(
    "/containers/{container_id}/annotations",
    operation_id="listContainerAnnotations",
    openapi_extra=CREDENTIALS,
    response_model=Page[AnnotationRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_container_annotations(request: Request, listing: ContainerAnnotationsPageReader) -> Response:
    """Every annotation in the container, oldest first, optionally of one type or by one author."""
    container_id = listing.page.access.container.id
    return await _page(
        request,
        listing.page.session,
        listing.page.params,
        listing.filters,
        scope_container_id=container_id,
        container_id=container_id,
    )


@router.post(
    "/containers/{container_id}/annotations/bulk",
    operation_id="bulkCreateAnnotations",
    status_code=status.HTTP_201_CREATED,
    response_model=AnnotationBulkRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *_BODY_ERRORS),
)
async def bulk_create_annotations(
    body: AnnotationBulkCreate,
    access: ContainerAnnotator,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
) -> AnnotationBulkRead:
    """Add up to 10,000 annotations by the caller, naming items by id or external id; all or nothing."""
    annotations = await annotation_service.bulk_create(session, access=access, user=user, rows=body.items)
    response.headers["Location"] = f"/api/v1/containers/{access.container.id}/annotations"
    return AnnotationBulkRead(items=annotations)


@router.patch(
    "/containers/{container_id}/annotations/bulk",
    operation_id="bulkUpdateAnnotations",
    response_model=AnnotationBulkRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *BODY_ERRORS),
)
async def bulk_update_annotations(
    body: AnnotationBulkUpdate, access: ContainerAnnotator, user: CurrentUser, session: SessionDep
) -> AnnotationBulkRead:
    """Change up to 10,000 annotations at once, all or nothing: a new `type` (move them to another label set),
    new `data`, or both. Annotators change their own, reviewers and above anyone's; each `version` goes up."""
    annotations = await annotation_service.bulk_update(session, access=access, user=user, rows=body.items)
    return AnnotationBulkRead(items=annotations)


@router.post(
    "/containers/{container_id}/annotations/bulk-delete",
    operation_id="bulkDeleteAnnotations",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *BODY_ERRORS),
)
async def bulk_delete_annotations(
    body: BulkIds, access: ContainerAnnotator, user: CurrentUser, session: SessionDep
) -> Response:
    """Delete up to 10,000 annotations of the container, all or nothing, under the rules of single deletes."""
    await annotation_service.bulk_delete(session, access=access, user=user, ids=body.ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/annotations/{annotation_id}",
    operation_id="getAnnotation",
    response_model=AnnotationRead,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(NotAuthenticated, NotFound)},
)
async def get_annotation(access: AnnotationReader, response: Response) -> AnnotationRead:
    """One annotation; its `ETag` is what `If-Match` expects."""
    response.headers["ETag"] = etag_of(access.annotation)
    return AnnotationRead.model_validate(access.annotation)


@router.patch(
    "/annotations/{annotation_id}",
    operation_id="updateAnnotation",
    response_model=AnnotationRead,
    responses={
        200: {"headers": _ETAG_HEADER},
        **problem_responses(*_WRITE_ERRORS, *_BODY_ERRORS),
    },
)
async def update_annotation(
    body: AnnotationUpdate,
    access: AnnotationReader,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> AnnotationRead:
    """Change an annotation: your own (annotators), or anyone's (reviewers and above). Bumps `version`."""
    annotation = await annotation_service.update(session, access=access, user=user, data=body, if_match=if_match)
    response.headers["ETag"] = etag_of(annotation)
    return annotation


@router.delete(
    "/annotations/{annotation_id}",
    operation_id="deleteAnnotation",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*_WRITE_ERRORS),
)
async def delete_annotation(
    access: AnnotationReader, user: CurrentUser, session: SessionDep, if_match: IfMatch = None
) -> Response:
    """Delete an annotation under the same rules as changing it."""
    await annotation_service.delete(session, access=access, user=user, if_match=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/annotations/{annotation_id}/history",
    operation_id="listAnnotationHistory",
    response_model=Page[AnnotationRevisionRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_annotation_history(
    request: Request, access: AnnotationHistoryReader, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """Every version of an annotation, oldest first: content, action, who and when. A deleted annotation's
    history stays readable by managers and owners."""
    revisions, cursor, total = await annotation_service.history(session, access=access, params=page)
    return page_response(request, revisions, cursor, total, settings.public_base_url)


@router.post(
    "/annotations/{annotation_id}/revert",
    operation_id="revertAnnotation",
    response_model=AnnotationRead,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(*_WRITE_ERRORS, *_BODY_ERRORS, UnknownVersion)},
)
async def revert_annotation(
    body: AnnotationRevert,
    access: AnnotationReader,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> AnnotationRead:
    """Make an earlier version's type, data and offsets current again, as a new version (same rules as PATCH)."""
    annotation = await annotation_service.revert(
        session, access=access, user=user, version=body.version, if_match=if_match
    )
    response.headers["ETag"] = etag_of(annotation)
    return annotation
