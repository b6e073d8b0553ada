"""`ItemReader`, `ItemAnnotator`, `ItemManager`: the item in the path, checked against its project."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.item.service import ItemAccess, item_service
from annotation_platform.project.permissions import Action

ItemIdPath = Annotated[str, Path(description="Item id.")]


def item_access(action: Action) -> Callable[..., Awaitable[ItemAccess]]:
    async def dependency(item_id: ItemIdPath, user: CurrentUser, session: SessionDep) -> ItemAccess:
        return await item_service.access(session, item_id=path_id(item_id, "item"), user=user, action=action)

    return dependency


ItemReader = Annotated[ItemAccess, Depends(item_access(Action.read))]
ItemAnnotator = Annotated[ItemAccess, Depends(item_access(Action.annotate))]
ItemManager = Annotated[ItemAccess, Depends(item_access(Action.manage))]
