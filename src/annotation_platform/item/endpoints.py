from __future__ import annotations

from fastapi import Request, Response, status

from annotation_platform.auth.dependencies import CREDENTIALS
from annotation_platform.config import settings_from
from annotation_platform.container.dependencies import ContainerManager
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    LIST_ERRORS,
    Forbidden,
    NotAuthenticated,
    NotFound,
    problem_responses,
)
from annotation_platform.core.pagination import Page, json_page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.core.schemas import BulkIds
from annotation_platform.item.dependencies import ItemManager, ItemReader, ItemsPageReader
from annotation_platform.item.schemas import (
    ItemBulkCreate,
    ItemBulkRead,
    ItemBulkUpdate,
    ItemCreate,
    ItemRead,
    ItemUpdate,
)
from annotation_platform.item.service import (
    BulkRowsInvalid,
    ContentConflictsWithAnnotations,
    DuplicateExternalId,
    MetadataInvalid,
    ParentNotFound,
    item_service,
)

router = ApiRouter(tags=["items"])

_BODY_ERRORS = (*BODY_ERRORS, MetadataInvalid, ParentNotFound)


@router.get(
    "/containers/{container_id}/items",
    operation_id="listItems",
    openapi_extra=CREDENTIALS,
    response_model=Page[ItemRead],
    responses=problem_responses(*LIST_ERRORS),
)
async def list_items(request: Request, page: ItemsPageReader) -> Response:
    """The container's items in `sequence` order."""
    body, cursor = await item_service.page(page.session, access=page.access, params=page.params)
    return json_page_response(request, body, cursor, settings_from(request).public_base_url)


@router.post(
    "/containers/{container_id}/items",
    operation_id="createItem",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, DuplicateExternalId, *_BODY_ERRORS),
)
async def create_item(body: ItemCreate, access: ContainerManager, session: SessionDep, response: Response) -> ItemRead:
    """Add one item (managers and owners). Without `sequence` it goes after the last item."""
    item = await item_service.create(session, access=access, data=body)
    response.headers["Location"] = f"/api/v1/items/{item.id}"
    return item


@router.post(
    "/containers/{container_id}/items/bulk",
    operation_id="bulkCreateItems",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemBulkRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *_BODY_ERRORS),
)
async def bulk_create_items(
    body: ItemBulkCreate,
    access: ContainerManager,
    session: SessionDep,
    response: Response,
) -> ItemBulkRead:
    """Add up to 10,000 items at once, all or nothing.

    Rows may name their parent by `parent_external_id`, including rows later in the same request. When any
    row is wrong nothing is written and the 422 lists every failing row by its index.
    """
    items = await item_service.bulk_create(session, access=access, items=body.items)
    response.headers["Location"] = f"/api/v1/containers/{access.container.id}/items"
    return ItemBulkRead(items=items)


@router.patch(
    "/containers/{container_id}/items/bulk",
    operation_id="bulkUpdateItems",
    response_model=ItemBulkRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *_BODY_ERRORS),
)
async def bulk_update_items(body: ItemBulkUpdate, access: ContainerManager, session: SessionDep) -> ItemBulkRead:
    """Give up to 10,000 items of the container new metadata at once, all or nothing (managers and owners).

    Each row's metadata must match the container's item schema. When any row is wrong nothing is written and
    the 422 lists every failing row by its index.
    """
    return ItemBulkRead(items=await item_service.bulk_update(session, access=access, rows=body.items))


@router.post(
    "/containers/{container_id}/items/bulk-delete",
    operation_id="bulkDeleteItems",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, BulkRowsInvalid, *BODY_ERRORS),
)
async def bulk_delete_items(body: BulkIds, access: ContainerManager, session: SessionDep) -> Response:
    """Delete up to 10,000 items of the container and their annotations, all or nothing (managers and owners).

    When any id is not an item of this container nothing is deleted and the 422 lists each such id's index.
    """
    await item_service.bulk_delete(session, access=access, ids=body.ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/items/{item_id}",
    operation_id="getItem",
    response_model=ItemRead,
    responses=problem_responses(NotAuthenticated, NotFound),
)
async def get_item(access: ItemReader) -> ItemRead:
    """One item."""
    return ItemRead.model_validate(access.item)


@router.patch(
    "/items/{item_id}",
    operation_id="updateItem",
    response_model=ItemRead,
    responses=problem_responses(
        NotAuthenticated,
        Forbidden,
        NotFound,
        DuplicateExternalId,
        ContentConflictsWithAnnotations,
        *_BODY_ERRORS,
    ),
)
async def update_item(body: ItemUpdate, access: ItemManager, session: SessionDep) -> ItemRead:
    """Change an item (managers and owners). `parent_id: null` detaches it from its parent."""
    return await item_service.update(session, access=access, data=body)


@router.delete(
    "/items/{item_id}",
    operation_id="deleteItem",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound),
)
async def delete_item(access: ItemManager, session: SessionDep) -> Response:
    """Delete an item and its annotations; items that replied to it keep no parent (managers and owners)."""
    await item_service.delete(session, access=access)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
