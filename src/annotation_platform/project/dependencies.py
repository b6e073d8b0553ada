"""`ProjectReader`, `ProjectManager`, `ProjectOwner`: the project in the path, checked against the table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from annotation_platform.auth.dependencies import READ_METHODS, CurrentUser
from annotation_platform.core.db import SessionDep
from annotation_platform.core.ids import path_id
from annotation_platform.project.permissions import Action
from annotation_platform.project.service import ProjectAccess, project_service

ProjectIdPath = Annotated[str, Path(description="Project id.")]


def project_access(action: Action) -> Callable[..., Awaitable[ProjectAccess]]:
    async def dependency(
        request: Request, project_id: ProjectIdPath, user: CurrentUser, session: SessionDep
    ) -> ProjectAccess:
        return await project_service.access(
            session,
            project_id=path_id(project_id, "project"),
            user=user,
            action=action,
            cacheable=request.method in READ_METHODS,
        )

    return dependency


ProjectReader = Annotated[ProjectAccess, Depends(project_access(Action.read))]
ProjectManager = Annotated[ProjectAccess, Depends(project_access(Action.manage))]
ProjectOwner = Annotated[ProjectAccess, Depends(project_access(Action.own))]
