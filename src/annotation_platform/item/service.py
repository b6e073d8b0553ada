"""Item rules: unique external ids, parents in the same container, metadata that fits the item schema.

Single and bulk creation share one preparation step that checks every row and collects every problem, so a
bulk request either writes all its rows or answers 422 naming each bad row, and writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.events import emit_deleted_with
from annotation_platform.annotation.history import record_deletions
from annotation_platform.annotation.repository import annotation_repository
from annotation_platform.audit.context import context_of
from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.change.service import change_service
from annotation_platform.container.repository import container_repository
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.cache import cache_of, container_scope, lookup_page, store_page
from annotation_platform.core.errors import AppError, Conflict, NotFound, ValidationFailed
from annotation_platform.core.field_crypto import is_sensitive, loaded_sealed, redact
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams, page_body
from annotation_platform.core.sql import IN_LIST_CHUNK
from annotation_platform.core.types import utcnow
from annotation_platform.item.repository import item_repository
from annotation_platform.item.schemas import ItemBulkUpdateRow, ItemCreate, ItemRead, ItemUpdate
from annotation_platform.models import Container, Item, Role, User
from annotation_platform.project.permissions import Action, authorize_found
from annotation_platform.webhook.events import ITEM_CREATED, ITEM_DELETED, ITEM_UPDATED, emit


class DuplicateExternalId(Conflict):
    code = "duplicate_external_id"
    title = "Duplicate external id"
    description = "The container already has an item with this `external_id`. Use another id or update that item."


class ParentNotFound(ValidationFailed):
    code = "parent_not_found"
    title = "Parent not in this container"
    description = "The parent must be an item of the same container. Check `parent_id` / `parent_external_id`."


class MetadataInvalid(ValidationFailed):
    code = "metadata_invalid"
    title = "Metadata does not match the item schema"
    description = "`metadata` does not satisfy the container's `item_schema`; `errors` says where."


class BulkRowsInvalid(ValidationFailed):
    code = "bulk_rows_invalid"
    title = "Some rows are invalid"
    description = "Nothing was written. `errors` names each failing row by its index in `items`; fix them and resend."


class ItemNotInContainer(ValidationFailed):
    code = "item_not_found"
    title = "Item not in this container"
    description = "A row names an item that is not in this container. Check `item_id` / `item_external_id` / `id`."


class ContentConflictsWithAnnotations(Conflict):
    code = "content_conflicts_with_annotations"
    title = "Content too short for its annotations"
    description = "Annotations point past the end of the new content. Change or delete them first."


@dataclass(frozen=True, slots=True)
class RowError:
    index: int
    field: str
    message: str
    kind: type[AppError]

    def detail(self, *prefix: str | int) -> dict[str, Any]:
        return {"loc": [*prefix, self.field], "msg": self.message, "type": self.kind.code}


@dataclass(frozen=True, slots=True)
class ItemAccess:
    item: Item
    role: Role
    project_id: uuid.UUID


_ITEM_LIST = TypeAdapter(list[ItemRead])
SEALED_FIELDS = ("content", "metadata")
"""The fields of a sensitive project's items that are stored encrypted (and never audited)."""


# `ItemRead`'s fields, in the order of `item_repository.READ_COLUMNS`.
_ITEM_FIELDS = tuple(ItemRead.model_fields)


def items_json(rows: list[Any]) -> bytes:
    """A page's rows (`item_repository.page`) as the JSON array of `ItemRead`s, built from the rows by orjson:
    the model's document, without validating and dumping fifty models a page."""
    return orjson.dumps(
        [dict(zip(_ITEM_FIELDS, row, strict=True)) for row in rows],
        option=orjson.OPT_UTC_Z,
        default=str,
    )


def _to_read(item: Item) -> ItemRead:
    return ItemRead.model_validate(item)


def _event_data(items: list[ItemRead]) -> dict[str, Any]:
    """A webhook event's data: a reference to every item of the request (not the content, which may be large:
    receivers read what they need through the API)."""
    return {
        "count": len(items),
        "items": [
            {"id": i.id, "container_id": i.container_id, "external_id": i.external_id, "sequence": i.sequence}
            for i in items
        ],
    }


def page_cache_entry(container_id: uuid.UUID, params: PageParams) -> tuple[str, tuple[str]]:
    """The cache key and scopes of a page of the container's items."""
    key = f"items:{container_id}:{params.limit}:{int(params.include_total)}:{params.cursor or ''}"
    return key, (container_scope(container_id),)


class ItemService:
    async def access(self, session: AsyncSession, *, item_id: uuid.UUID, user: User, action: Action) -> ItemAccess:
        found = await item_repository.get_with_role(session, item_id, user)
        if found is None:
            raise NotFound("No such item.")
        item, role = authorize_found((found[0], found[1]), user, action, "item")
        return ItemAccess(item=item, role=role, project_id=found[2])

    async def page(
        self, session: AsyncSession, *, access: ContainerAccess, params: PageParams
    ) -> tuple[bytes, str | None]:
        """The page's JSON and the next cursor. Pages are cached until the container or its items change."""
        container_id = access.container.id
        cache = cache_of(session)
        key, scopes = page_cache_entry(container_id, params)
        generations: list[int] = []
        if cache is not None:
            page, generations = await lookup_page(session, cache, key, scopes)
            if page is not None:
                return page
        # A sensitive project's pages are never stored (the cache would hold their plaintext), so a hit above
        # was a plain project's, and only a miss asks.
        sensitive = await is_sensitive(session, access.container.project_id)
        if sensitive:
            cache = None
        rows, cursor = await item_repository.page(session, container_id, params, sensitive=sensitive)
        # Opened rows of a sensitive project are dicts, validated into the models; plain rows go straight to JSON.
        page_json = _ITEM_LIST.dump_json(_ITEM_LIST.validate_python(rows)) if sensitive else items_json(rows)
        body = page_body(page_json, cursor, access.container.item_count if params.include_total else None)
        if cache is not None:
            await store_page(cache, key, generations, body, cursor)
        return body, cursor

    async def create(self, session: AsyncSession, *, access: ContainerAccess, data: ItemCreate) -> ItemRead:
        rows, errors = await self._prepare(session, access.container, [data])
        if errors:
            first = errors[0]
            raise first.kind(first.message, errors=[error.detail("body") for error in errors])
        created = (await self._insert(session, access.container, rows))[0]
        audit_service.record(
            session,
            action="item.create",
            resource_type="item",
            resource_id=created.id,
            project_id=access.container.project_id,
            after={"container_id": created.container_id, "external_id": created.external_id},
        )
        await emit(session, access.container.project_id, ITEM_CREATED, _event_data([created]))
        return created

    async def bulk_create(
        self, session: AsyncSession, *, access: ContainerAccess, items: list[ItemCreate]
    ) -> list[ItemRead]:
        rows, errors = await self._prepare(session, access.container, items)
        if errors:
            raise BulkRowsInvalid(
                f"{len({e.index for e in errors})} of {len(items)} rows are invalid; nothing was written.",
                errors=[error.detail("body", "items", error.index) for error in errors],
            )
        created = await self._insert(session, access.container, rows)
        audit_service.record(
            session,
            action="item.bulk_create",
            resource_type="container",
            resource_id=access.container.id,
            project_id=access.container.project_id,
            after={"items_created": len(created)},
        )
        await emit(session, access.container.project_id, ITEM_CREATED, _event_data(created))
        return created

    async def bulk_update(
        self, session: AsyncSession, *, access: ContainerAccess, rows: list[ItemBulkUpdateRow]
    ) -> list[ItemRead]:
        """New metadata for many items of the container, all or none."""
        container = access.container
        ids = [row.id for row in rows]
        known = await item_repository.existing_ids(session, container.id, ids)
        validator = Draft202012Validator(container.item_schema) if container.item_schema is not None else None
        errors: list[dict[str, Any]] = []
        seen: set[uuid.UUID] = set()
        for index, row in enumerate(rows):
            if row.id not in known:
                errors.append(_row_error(index, "id", "No such item in this container.", ItemNotInContainer.code))
            elif row.id in seen:
                errors.append(_row_error(index, "id", "Repeats an earlier row's item.", DuplicateExternalId.code))
            seen.add(row.id)
            problem = _first_schema_error(validator, row.metadata) if validator is not None else None
            if problem:
                errors.append(_row_error(index, "metadata", problem, MetadataInvalid.code))
        if errors:
            raise BulkRowsInvalid(_invalid_rows(errors, len(rows)), errors=errors)
        now = utcnow()
        schema_version = container.item_schema_version
        sensitive = await is_sensitive(session, container.project_id)
        await item_repository.update_metadata(
            session,
            container.id,
            [
                {"id": row.id, "metadata_": row.metadata, "schema_version": schema_version, "updated_at": now}
                for row in rows
            ],
            sensitive=sensitive,
        )
        await change_service.record(
            session,
            project_id=container.project_id,
            resource_type="item",
            action="updated",
            entries=[(row.id, container.id, None) for row in rows],
        )
        audit_service.record(
            session,
            action="item.bulk_update",
            resource_type="container",
            resource_id=container.id,
            project_id=container.project_id,
            after={"items_updated": len(rows)},
        )
        updated = _ITEM_LIST.validate_python(
            await item_repository.read_many(session, container.id, ids, sensitive=sensitive), from_attributes=True
        )
        await emit(session, container.project_id, ITEM_UPDATED, _event_data(updated))
        return updated

    async def bulk_delete(self, session: AsyncSession, *, access: ContainerAccess, ids: list[uuid.UUID]) -> None:
        """Deletes many items of the container and their annotations, all or none."""
        container = access.container
        known = await item_repository.existing_ids(session, container.id, ids)
        errors = [
            _row_error(index, "", "No such item in this container.", ItemNotInContainer.code, field="ids")
            for index, item_id in enumerate(ids)
            if item_id not in known
        ]
        if errors:
            raise BulkRowsInvalid(_invalid_rows(errors, len(ids)), errors=errors)
        unique = list(dict.fromkeys(ids))
        gone = _ITEM_LIST.validate_python(
            await item_repository.read_many(session, container.id, unique), from_attributes=True
        )
        await self._history_of_deleting(session, container_id=container.id, project_id=container.project_id, ids=unique)
        await item_repository.delete_many(session, container.id, unique)
        await emit(session, container.project_id, ITEM_DELETED, _event_data(gone))
        await container_repository.add_to_item_count(session, container.id, -len(unique))
        audit_service.record(
            session,
            action="item.bulk_delete",
            resource_type="container",
            resource_id=container.id,
            project_id=container.project_id,
            before={"items_deleted": len(unique)},
        )

    async def _history_of_deleting(
        self, session: AsyncSession, *, container_id: uuid.UUID, project_id: uuid.UUID, ids: list[uuid.UUID]
    ) -> None:
        """The items' annotations go with them: their history keeps a `deleted` revision, the feed an entry
        each, and webhooks get them in one `annotation.deleted` event; each reply that loses its parent gets an
        `updated` entry, and each item a `deleted` one. In chunks the database's IN lists can take (one item and
        many alike)."""
        changed_by, now = context_of(session).user_id, utcnow()
        chunks = [ids[start : start + IN_LIST_CHUNK] for start in range(0, len(ids), IN_LIST_CHUNK)]
        selections = [annotation_repository.ids_on_items(container_id, chunk) for chunk in chunks]
        await emit_deleted_with(session, project_id, selections)
        for chunk, annotations_of_chunk in zip(chunks, selections, strict=True):
            await record_deletions(session, annotations_of_chunk, project_id=project_id, changed_by=changed_by, now=now)
            await change_service.record_from(
                session,
                item_repository.replies_changes_of(
                    container_id, chunk, project_id=project_id, changed_by=changed_by, now=now
                ),
            )
        await change_service.record(
            session,
            project_id=project_id,
            resource_type="item",
            action="deleted",
            entries=[(item_id, container_id, None) for item_id in ids],
        )

    async def update(self, session: AsyncSession, *, access: ItemAccess, data: ItemUpdate) -> ItemRead:
        item = access.item
        before = _to_read(item)
        changes = data.model_dump(exclude_unset=True)
        container = await self._container(session, item)
        if "metadata" in changes:
            problem = _schema_problem(container.item_schema, changes["metadata"])
            if problem:
                raise MetadataInvalid(problem, errors=[{"loc": ["body", "metadata"], "msg": problem, "type": "schema"}])
            item.metadata_ = changes.pop("metadata")
            item.schema_version = container.item_schema_version
        if changes.get("external_id", item.external_id) != item.external_id:
            taken = await item_repository.ids_by_external_id(session, item.container_id, [changes["external_id"]])
            if taken:
                raise DuplicateExternalId()
        if "parent_external_id" in changes:
            reference = changes.pop("parent_external_id")
            found = (
                await item_repository.ids_by_external_id(session, item.container_id, [reference]) if reference else {}
            )
            if reference and reference not in found:
                raise ParentNotFound(f"No item with external id {reference!r} in this container.")
            changes["parent_id"] = found.get(reference) if reference else None
        if changes.get("parent_id") is not None:
            parent_id = changes["parent_id"]
            if parent_id == item.id or not await item_repository.existing_ids(session, item.container_id, [parent_id]):
                raise ParentNotFound("The parent must be another item of this container.")
        if "content" in changes:
            longest = await item_repository.longest_annotation_end(session, item.id)
            if longest is not None and longest > len(changes["content"]):
                raise ContentConflictsWithAnnotations(
                    f"An annotation ends at offset {longest}; the new content has {len(changes['content'])} characters."
                )
        for key, value in changes.items():
            setattr(item, key, value)
        await session.flush()
        after = _to_read(item)
        if after != before:
            await change_service.record(
                session,
                project_id=access.project_id,
                resource_type="item",
                action="updated",
                entries=[(item.id, item.container_id, None)],
            )
        old, new = changed_fields(before, after)
        if loaded_sealed(item):
            old, new = redact(old, SEALED_FIELDS), redact(new, SEALED_FIELDS)
        audit_service.record(
            session,
            action="item.update",
            resource_type="item",
            resource_id=item.id,
            project_id=access.project_id,
            before=old,
            after=new,
        )
        await emit(session, access.project_id, ITEM_UPDATED, _event_data([after]))
        return after

    async def delete(self, session: AsyncSession, *, access: ItemAccess) -> None:
        item = access.item
        audit_service.record(
            session,
            action="item.delete",
            resource_type="item",
            resource_id=item.id,
            project_id=access.project_id,
            before={"container_id": item.container_id, "external_id": item.external_id},
        )
        await self._history_of_deleting(
            session, container_id=item.container_id, project_id=access.project_id, ids=[item.id]
        )
        await emit(session, access.project_id, ITEM_DELETED, _event_data([_to_read(item)]))
        await item_repository.detach_children(session, item)
        await item_repository.delete(session, item)
        await container_repository.add_to_item_count(session, item.container_id, -1)

    async def _container(self, session: AsyncSession, item: Item) -> Container:
        return await session.get_one(Container, item.container_id)

    async def _prepare(
        self, session: AsyncSession, container: Container, items: list[ItemCreate]
    ) -> tuple[list[dict[str, Any]], list[RowError]]:
        """The rows to insert, and every problem found; ids are made here so parents resolve in memory."""
        errors: list[RowError] = []
        validator = Draft202012Validator(container.item_schema) if container.item_schema is not None else None
        batch_ids: dict[str, uuid.UUID] = {}
        for index, data in enumerate(items):
            if data.external_id in batch_ids:
                errors.append(
                    RowError(index, "external_id", "Repeats an earlier row's external_id.", DuplicateExternalId)
                )
            else:
                batch_ids[data.external_id] = uuid7()
            if validator is not None:
                problem = _first_schema_error(validator, data.metadata)
                if problem:
                    errors.append(RowError(index, "metadata", problem, MetadataInvalid))

        existing = await item_repository.ids_by_external_id(session, container.id, list(batch_ids))
        for index, data in enumerate(items):
            if data.external_id in existing:
                errors.append(
                    RowError(index, "external_id", "An item with this external_id exists.", DuplicateExternalId)
                )

        outside_refs = [
            d.parent_external_id for d in items if d.parent_external_id and d.parent_external_id not in batch_ids
        ]
        parents_by_external_id = await item_repository.ids_by_external_id(session, container.id, outside_refs)
        parents_by_external_id.update(batch_ids)
        known_parent_ids = await item_repository.existing_ids(
            session, container.id, [d.parent_id for d in items if d.parent_id is not None]
        )

        rows: list[dict[str, Any]] = []
        now = utcnow()
        for index, data in enumerate(items):
            parent_id = data.parent_id
            if data.parent_external_id is not None:
                parent_id = parents_by_external_id.get(data.parent_external_id)
                if parent_id is None:
                    errors.append(
                        RowError(
                            index,
                            "parent_external_id",
                            "No item with this external id in the container.",
                            ParentNotFound,
                        )
                    )
            elif parent_id is not None and parent_id not in known_parent_ids:
                errors.append(RowError(index, "parent_id", "Not an item of this container.", ParentNotFound))
            item_id = batch_ids.get(data.external_id) or uuid7()
            if parent_id == item_id:
                errors.append(
                    RowError(index, "parent_external_id", "An item cannot be its own parent.", ParentNotFound)
                )
            rows.append(
                {
                    "id": item_id,
                    "container_id": container.id,
                    "external_id": data.external_id,
                    "content": data.content,
                    "metadata_": data.metadata,
                    "sequence": data.sequence,
                    "parent_id": parent_id,
                    "schema_version": container.item_schema_version,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        errors.sort(key=lambda error: error.index)
        return rows, errors

    async def _insert(self, session: AsyncSession, container: Container, rows: list[dict[str, Any]]) -> list[ItemRead]:
        await container_repository.add_to_item_count(session, container.id, len(rows))
        last_sequence = await item_repository.max_sequence(session, container.id)
        next_sequence = 0 if last_sequence is None else last_sequence + 1
        for row in rows:
            if row["sequence"] is None:
                row["sequence"] = next_sequence
                next_sequence += 1
            else:
                next_sequence = max(next_sequence, row["sequence"] + 1)
        await item_repository.insert_many(session, rows, sensitive=await is_sensitive(session, container.project_id))
        await change_service.record(
            session,
            project_id=container.project_id,
            resource_type="item",
            action="created",
            entries=[(row["id"], container.id, None) for row in rows],
        )
        return [
            ItemRead(
                id=row["id"],
                container_id=row["container_id"],
                external_id=row["external_id"],
                content=row["content"],
                metadata=row["metadata_"],
                sequence=row["sequence"],
                parent_id=row["parent_id"],
                schema_version=row["schema_version"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
            for row in rows
        ]


def _row_error(index: int, name: str, message: str, code: str, *, field: str = "items") -> dict[str, Any]:
    """One failing row of a bulk body, by its index (`name`: the field of the row, if any)."""
    return {"loc": ["body", field, index, *([name] if name else [])], "msg": message, "type": code}


def _invalid_rows(errors: list[dict[str, Any]], total: int) -> str:
    return f"{len({error['loc'][2] for error in errors})} of {total} rows are invalid; nothing was written."


def _first_schema_error(validator: Draft202012Validator, metadata: dict[str, Any]) -> str | None:
    error = next(iter(validator.iter_errors(metadata)), None)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


def _schema_problem(item_schema: dict[str, Any] | None, metadata: dict[str, Any]) -> str | None:
    if item_schema is None:
        return None
    return _first_schema_error(Draft202012Validator(item_schema), metadata)


item_service = ItemService()
