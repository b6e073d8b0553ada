"""Project rules: creating one makes the caller its owner; only owners delete it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.core.cache import Cache, cache_of, decode_row, dumps, encode_row, project_scope
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.models import Membership, Project, Role, User
from annotation_platform.project.permissions import Action, authorize_found
from annotation_platform.project.repository import project_repository
from annotation_platform.project.schemas import ProjectCreate, ProjectRead, ProjectUpdate


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    project: Project
    role: Role
    my_role: Role | None

    def read(self) -> ProjectRead:
        return to_read(self.project, self.my_role)


def to_read(project: Project, my_role: str | None) -> ProjectRead:
    return ProjectRead(
        id=project.id,
        name=project.name,
        description=project.description,
        type=project.type,
        settings=project.settings,
        sensitive=project.sensitive,
        require_if_match=project.require_if_match,
        my_role=Role(my_role) if my_role else None,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


class ProjectService:
    async def access(
        self, session: AsyncSession, *, project_id: uuid.UUID, user: User, action: Action, cacheable: bool = False
    ) -> ProjectAccess:
        """The project with the caller's role, checked for `action`. `cacheable` (reads only): the look-up may
        come from the cache; a write to the project or its memberships retires the entry."""
        cache = cache_of(session) if cacheable else None
        if cache is None:
            found = await project_repository.get_with_role(session, project_id, user)
        else:
            found = await self._cached_with_role(session, cache, project_id, user)
        project, role = authorize_found(found, user, action, "project")
        my_role = found[1] if found else None
        return ProjectAccess(project=project, role=role, my_role=Role(my_role) if my_role else None)

    async def _cached_with_role(
        self, session: AsyncSession, cache: Cache, project_id: uuid.UUID, user: User
    ) -> tuple[Project, str | None] | None:
        key = f"project:{project_id}:{user.id}:{int(user.acts_as_superuser)}"
        cached, generations = await cache.lookup(key, (project_scope(project_id),))
        if cached is not None:
            entry = orjson.loads(cached)
            return decode_row(Project, entry["project"]), entry["role"]
        found = await project_repository.get_with_role(session, project_id, user)
        if found is not None:
            await cache.store(key, generations, dumps({"project": encode_row(found[0]), "role": found[1]}))
        return found

    async def create(self, session: AsyncSession, *, user: User, data: ProjectCreate) -> ProjectRead:
        project = Project(id=uuid7(), **data.model_dump(), created_by=user.id)
        await project_repository.add(
            session, project, Membership(project_id=project.id, user_id=user.id, role=Role.owner)
        )
        audit_service.record(
            session,
            action="project.create",
            resource_type="project",
            resource_id=project.id,
            project_id=project.id,
            after=data,
        )
        return to_read(project, Role.owner)

    async def page(
        self, session: AsyncSession, *, user: User, params: PageParams
    ) -> tuple[list[ProjectRead], str | None, int | None]:
        rows, cursor = await project_repository.page(session, user, params)
        total = await project_repository.count(session, user) if params.include_total else None
        return [to_read(project, role) for project, role in rows], cursor, total

    async def update(self, session: AsyncSession, *, access: ProjectAccess, data: ProjectUpdate) -> ProjectRead:
        before = access.read()
        for key, value in data.model_dump(exclude_unset=True).items():
            setattr(access.project, key, value)
        await session.flush()
        after = access.read()
        old, new = changed_fields(before, after)
        audit_service.record(
            session,
            action="project.update",
            resource_type="project",
            resource_id=access.project.id,
            project_id=access.project.id,
            before=old,
            after=new,
        )
        return after

    async def delete(self, session: AsyncSession, *, access: ProjectAccess) -> None:
        audit_service.record(
            session,
            action="project.delete",
            resource_type="project",
            resource_id=access.project.id,
            project_id=access.project.id,
            before={"name": access.project.name},
        )
        await project_repository.delete(session, access.project)


project_service = ProjectService()
