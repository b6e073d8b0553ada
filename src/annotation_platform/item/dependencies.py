"""`ItemReader`, `ItemAnnotator`, `ItemManager`: the item in the path, checked against its project."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, Path, Request

from annotation_platform.auth.dependencies import CurrentUser, cached_credential
from annotation_platform.container.dependencies import ContainerIdPath
from annotation_platform.container.service import access_cache_entry
from annotation_platform.core.cache import AUTH, cache_of, prefetch
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import PageParamsDep
from annotation_platform.item.service import ItemAccess, item_service, page_cache_entry
from annotation_platform.project.permissions import Action

ItemIdPath = Annotated[str, Path(description="Item id.")]


def item_access(action: Action) -> Callable[..., Awaitable[ItemAccess]]:
    async def dependency(item_id: ItemIdPath, user: CurrentUser, session: SessionDep) -> ItemAccess:
        return await item_service.access(session, item_id=path_id(item_id, "item"), user=user, action=action)

    return dependency


async def prefetch_items_page(
    request: Request, container_id: ContainerIdPath, session: SessionDep, page: PageParamsDep
) -> None:
    """Reads the cache entries of a page of items (the caller, the container with their role, the page) in one
    round trip instead of three; each look-up then answers from them (core/cache.py `prefetch`)."""
    if cache_of(session) is None:
        return
    try:
        container = uuid.UUID(container_id)
    except ValueError:
        return
    wanted: list[tuple[str, Sequence[str]]] = [page_cache_entry(container, page)]
    credential = cached_credential(request)
    if credential is not None:
        key, user_id = credential
        wanted.append((key, (AUTH,)))
        access = access_cache_entry(container, user_id) if user_id is not None else None
        if access is not None:
            wanted.append(access)
    await prefetch(session, wanted)


ItemsPagePrefetch = Annotated[None, Depends(prefetch_items_page)]
ItemReader = Annotated[ItemAccess, Depends(item_access(Action.read))]
ItemAnnotator = Annotated[ItemAccess, Depends(item_access(Action.annotate))]
ItemManager = Annotated[ItemAccess, Depends(item_access(Action.manage))]
