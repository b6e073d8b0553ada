"""`ContainerReader`, `ContainerAnnotator`, `ContainerManager`: the container in the path, checked;
`read_container_page` for the container's list pages."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.auth.dependencies import (
    READ_METHODS,
    CurrentPrincipal,
    authenticate_request,
    cached_credential,
    request_credentials,
)
from annotation_platform.container.service import ContainerAccess, access_cache_entry, container_service
from annotation_platform.core.cache import AUTH, cache_of, prefetch
from annotation_platform.core.db import SessionDep, get_session
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import PageParams
from annotation_platform.models import User
from annotation_platform.project.permissions import Action

ContainerIdPath = Annotated[str, Path(description="Container id.")]


def container_access(action: Action) -> Callable[..., Awaitable[ContainerAccess]]:
    async def dependency(
        request: Request, container_id: ContainerIdPath, principal: CurrentPrincipal, session: SessionDep
    ) -> ContainerAccess:
        return await _access(request, session, container_id, principal.user, action)

    return dependency


async def _access(
    request: Request, session: AsyncSession, container_id: str, user: User, action: Action
) -> ContainerAccess:
    return await container_service.access(
        session,
        container_id=path_id(container_id, "container"),
        user=user,
        action=action,
        cacheable=request.method in READ_METHODS,
    )


ContainerReader = Annotated[ContainerAccess, Depends(container_access(Action.read))]
ContainerAnnotator = Annotated[ContainerAccess, Depends(container_access(Action.annotate))]
ContainerManager = Annotated[ContainerAccess, Depends(container_access(Action.manage))]


@dataclass(frozen=True, slots=True)
class ContainerPage:
    """What a container's hot list route (items, annotations) needs, from its one dependency: the caller's read
    access, the page asked for and the request's session. FastAPI spends about 40 microseconds on each node of
    a route's dependency tree, and validates a shared dependency's parameters again at every use: with the
    session, the page and the access as separate dependencies, that was a quarter of a cached page."""

    access: ContainerAccess
    params: PageParams
    session: AsyncSession


async def read_container_page(
    request: Request,
    container_id: str,
    params: PageParams,
    page_entry: Callable[[uuid.UUID], tuple[str, Sequence[str]]],
) -> ContainerPage:
    """The caller's read access to the container of a list route, all in one dependency (a list route's own
    dependency calls it): the cache entries of the caller, of the container with their role and of the page
    `page_entry` names are read in one round trip (`prefetch`), then the caller is authenticated and their
    access checked as `ContainerReader` does, each look-up answering from what was read."""
    session = await get_session(request)
    await _prefetch_container_page(request, session, container_id, page_entry)
    principal = await authenticate_request(request, session, *request_credentials(request))
    access = await _access(request, session, container_id, principal.user, Action.read)
    return ContainerPage(access=access, params=params, session=session)


async def _prefetch_container_page(
    request: Request,
    session: AsyncSession,
    container_id: str,
    page_entry: Callable[[uuid.UUID], tuple[str, Sequence[str]]],
) -> None:
    if cache_of(session) is None:
        return
    try:
        container = uuid.UUID(container_id)
    except ValueError:
        return
    wanted: list[tuple[str, Sequence[str]]] = [page_entry(container)]
    credential = cached_credential(request)
    if credential is not None:
        key, user_id = credential
        wanted.append((key, (AUTH,)))
        access = access_cache_entry(container, user_id) if user_id is not None else None
        if access is not None:
            wanted.append(access)
    await prefetch(session, wanted)
