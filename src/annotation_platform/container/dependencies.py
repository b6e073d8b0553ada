"""`ContainerReader`, `ContainerAnnotator`, `ContainerManager`: the container in the path, checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from annotation_platform.auth.dependencies import READ_METHODS, CurrentUser
from annotation_platform.container.service import ContainerAccess, container_service
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.project.permissions import Action

ContainerIdPath = Annotated[str, Path(description="Container id.")]


def container_access(action: Action) -> Callable[..., Awaitable[ContainerAccess]]:
    async def dependency(
        request: Request, container_id: ContainerIdPath, user: CurrentUser, session: SessionDep
    ) -> ContainerAccess:
        return await container_service.access(
            session,
            container_id=path_id(container_id, "container"),
            user=user,
            action=action,
            cacheable=request.method in READ_METHODS,
        )

    return dependency


ContainerReader = Annotated[ContainerAccess, Depends(container_access(Action.read))]
ContainerAnnotator = Annotated[ContainerAccess, Depends(container_access(Action.annotate))]
ContainerManager = Annotated[ContainerAccess, Depends(container_access(Action.manage))]
