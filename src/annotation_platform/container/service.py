"""Container rules: unique names per project, item schemas that are valid JSON Schemas."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.context import context_of
from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.change.service import ChangeAction, change_service
from annotation_platform.container.repository import container_repository
from annotation_platform.container.schemas import ContainerCreate, ContainerRead, ContainerUpdate, ItemSchemaVersionRead
from annotation_platform.core.cache import (
    Cache,
    cache_of,
    container_scope,
    decode_row,
    dumps,
    encode_row,
    lookup,
    project_scope,
)
from annotation_platform.core.errors import Conflict, ValidationFailed
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.models import Container, ContainerSchemaVersion, Role, User
from annotation_platform.project.permissions import Action, authorize_found
from annotation_platform.project.service import ProjectAccess


class ContainerNameTaken(Conflict):
    code = "container_name_taken"
    title = "Container name taken"
    description = "The project already has a container with this name. Choose another name."


class InvalidItemSchema(ValidationFailed):
    code = "invalid_item_schema"
    title = "Invalid item schema"
    description = "`item_schema` is not a valid JSON Schema (draft 2020-12). Fix the schema."


_PROJECT_OF_CONTAINER_SIZE = 100_000
_project_of_container: dict[uuid.UUID, uuid.UUID] = {}


@dataclass(frozen=True, slots=True)
class ContainerAccess:
    container: Container
    role: Role

    def read(self) -> ContainerRead:
        return ContainerRead.model_validate(self.container)


def check_item_schema(item_schema: dict[str, Any] | None) -> None:
    if item_schema is None:
        return
    try:
        Draft202012Validator.check_schema(item_schema)
    except SchemaError as exc:
        raise InvalidItemSchema(
            f"item_schema is not a valid JSON Schema: {exc.message}",
            errors=[{"loc": ["body", "item_schema", *exc.path], "msg": exc.message, "type": "json_schema"}],
        ) from exc


def access_cache_entry(container_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str, tuple[str, str]] | None:
    """The cache key and scopes of a container with a user's role; None while this process does not know the
    container's project (the first look-up learns it)."""
    project_id = _project_of_container.get(container_id)
    if project_id is None:
        return None
    return f"container:{container_id}:{user_id}", (project_scope(project_id), container_scope(container_id))


class ContainerService:
    async def access(
        self, session: AsyncSession, *, container_id: uuid.UUID, user: User, action: Action, cacheable: bool = False
    ) -> ContainerAccess:
        """The container with the caller's role, checked for `action`. `cacheable` (reads only): the look-up may
        come from the cache; a write to the container, its items, its project or the memberships retires it."""
        cache = cache_of(session) if cacheable else None
        if cache is None:
            found = await container_repository.get_with_role(session, container_id, user)
        else:
            found = await self._cached_with_role(session, cache, container_id, user)
        container, role = authorize_found(found, user, action, "container")
        return ContainerAccess(container=container, role=role)

    async def _cached_with_role(
        self, session: AsyncSession, cache: Cache, container_id: uuid.UUID, user: User
    ) -> tuple[Container, str | None] | None:
        """A container never moves to another project, so its project (hence its scopes) is remembered here."""
        wanted = access_cache_entry(container_id, user.id)
        generations: list[int] = []
        if wanted is not None:
            cached, generations = await lookup(session, cache, *wanted)
            if cached is not None:
                entry = orjson.loads(cached)
                return decode_row(Container, entry["container"]), entry["role"]
        found = await container_repository.get_with_role(session, container_id, user)
        if found is not None and wanted is not None:
            entry = {"container": encode_row(found[0]), "role": found[1]}
            await cache.store(wanted[0], generations, dumps(entry))
        elif found is not None:
            if len(_project_of_container) >= _PROJECT_OF_CONTAINER_SIZE:
                _project_of_container.clear()
            _project_of_container[container_id] = found[0].project_id
        return found

    async def create(self, session: AsyncSession, *, access: ProjectAccess, data: ContainerCreate) -> ContainerRead:
        check_item_schema(data.item_schema)
        if await container_repository.name_taken(session, access.project.id, data.name):
            raise ContainerNameTaken()
        container = Container(
            id=uuid7(), project_id=access.project.id, item_count=0, item_schema_version=1, **data.model_dump()
        )
        await container_repository.add(session, container)
        await self._keep_schema(session, container)
        await self._record(session, container, "created")
        audit_service.record(
            session,
            action="container.create",
            resource_type="container",
            resource_id=container.id,
            project_id=container.project_id,
            after=data,
        )
        return ContainerRead.model_validate(container)

    async def page(
        self, session: AsyncSession, *, access: ProjectAccess, params: PageParams
    ) -> tuple[list[ContainerRead], str | None, int | None]:
        containers, cursor = await container_repository.page(session, access.project.id, params)
        total = await container_repository.count(session, access.project.id) if params.include_total else None
        return [ContainerRead.model_validate(c) for c in containers], cursor, total

    async def update(self, session: AsyncSession, *, access: ContainerAccess, data: ContainerUpdate) -> ContainerRead:
        changes = data.model_dump(exclude_unset=True)
        if "item_schema" in changes:
            check_item_schema(changes["item_schema"])
        container = access.container
        before = ContainerRead.model_validate(container)
        if "name" in changes and await container_repository.name_taken(
            session, container.project_id, changes["name"], excluding=container.id
        ):
            raise ContainerNameTaken()
        schema_changed = "item_schema" in changes and changes["item_schema"] != container.item_schema
        for key, value in changes.items():
            setattr(container, key, value)
        await session.flush()
        if schema_changed:
            await container_repository.next_schema_version(session, container)
            await self._keep_schema(session, container)
        after = ContainerRead.model_validate(container)
        if after != before:
            await self._record(session, container, "updated")
        old, new = changed_fields(before, after)
        audit_service.record(
            session,
            action="container.update",
            resource_type="container",
            resource_id=container.id,
            project_id=container.project_id,
            before=old,
            after=new,
        )
        return after

    async def delete(self, session: AsyncSession, *, access: ContainerAccess) -> None:
        container = access.container
        audit_service.record(
            session,
            action="container.delete",
            resource_type="container",
            resource_id=container.id,
            project_id=container.project_id,
            before={"name": container.name, "item_count": container.item_count},
        )
        # One entry stands for the container's items and annotations, which go with it (docs/versioning.md).
        await self._record(session, container, "deleted")
        await container_repository.delete(session, container)

    async def schema_versions(
        self, session: AsyncSession, *, access: ContainerAccess, params: PageParams
    ) -> tuple[list[ItemSchemaVersionRead], str | None, int | None]:
        versions, cursor, total = await container_repository.schema_versions(session, access.container.id, params)
        return [ItemSchemaVersionRead.model_validate(version) for version in versions], cursor, total

    async def _keep_schema(self, session: AsyncSession, container: Container) -> None:
        await container_repository.add_schema_version(
            session,
            ContainerSchemaVersion(
                container_id=container.id,
                version=container.item_schema_version,
                item_schema=container.item_schema,
                created_by=context_of(session).user_id,
            ),
        )

    async def _record(self, session: AsyncSession, container: Container, action: ChangeAction) -> None:
        await change_service.record(
            session,
            project_id=container.project_id,
            resource_type="container",
            action=action,
            entries=[(container.id, container.id, container.item_schema_version)],
        )


container_service = ContainerService()
