"""`ItemReader`, `ItemAnnotator`, `ItemManager`: the item in the path, checked against its project."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from annotation_platform.auth.dependencies import CurrentPrincipal
from annotation_platform.container.dependencies import ContainerIdPath, ContainerPage, read_container_page
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import DEFAULT_LIMIT, IncludeTotal, PageCursor, PageLimit, PageParams
from annotation_platform.item.service import ItemAccess, item_service, page_cache_entry
from annotation_platform.project.permissions import Action

ItemIdPath = Annotated[str, Path(description="Item id.")]


def item_access(action: Action) -> Callable[..., Awaitable[ItemAccess]]:
    async def dependency(item_id: ItemIdPath, principal: CurrentPrincipal, session: SessionDep) -> ItemAccess:
        return await item_service.access(session, item_id=path_id(item_id, "item"), user=principal.user, action=action)

    return dependency


async def items_page_reader(
    request: Request,
    container_id: ContainerIdPath,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
    include_total: IncludeTotal = False,
) -> ContainerPage:
    """`ContainerReader` for the container's item page, with the page's cache entry read in the same round trip;
    the page's parameters are declared here rather than by `PageParamsDep` (see `ContainerPage`)."""
    page = PageParams(limit=limit, cursor=cursor, include_total=include_total)
    return await read_container_page(request, container_id, page, lambda container: page_cache_entry(container, page))


ItemsPageReader = Annotated[ContainerPage, Depends(items_page_reader)]
ItemReader = Annotated[ItemAccess, Depends(item_access(Action.read))]
ItemAnnotator = Annotated[ItemAccess, Depends(item_access(Action.annotate))]
ItemManager = Annotated[ItemAccess, Depends(item_access(Action.manage))]
