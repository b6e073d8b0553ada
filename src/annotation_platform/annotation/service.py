"""Annotation rules: annotators write their own, reviewers anyone's; offsets stay inside the content;
every change bumps `version`, and a stale `If-Match` is refused instead of silently overwriting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.events import event_data
from annotation_platform.annotation.history import record_deletions
from annotation_platform.annotation.repository import REVISION_CONTENT, annotation_repository, first_revisions
from annotation_platform.annotation.schemas import (
    AnnotationBulkRow,
    AnnotationBulkUpdateRow,
    AnnotationCreate,
    AnnotationRead,
    AnnotationRevisionRead,
    AnnotationUpdate,
)
from annotation_platform.audit.context import context_of
from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.change.service import change_service
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.cache import annotation_scope, cache_of, container_scope, lookup_page, store_page
from annotation_platform.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from annotation_platform.core.field_crypto import SEALED_PLACEHOLDER, is_sensitive, loaded_sealed, redact
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams, page_body
from annotation_platform.core.types import utcnow
from annotation_platform.item.service import BulkRowsInvalid, ItemAccess, ItemNotInContainer
from annotation_platform.models import Annotation, Role, User
from annotation_platform.project.permissions import Action, authorize_found, effective_role, role_allows
from annotation_platform.webhook.events import ANNOTATION_CREATED, ANNOTATION_DELETED, ANNOTATION_UPDATED, emit


class OffsetsOutOfRange(ValidationFailed):
    code = "offsets_out_of_range"
    title = "Offsets outside the content"
    description = "`end_offset` is past the end of the item's content. Offsets count characters from 0."


class AnnotationNotInContainer(ValidationFailed):
    code = "annotation_not_found"
    title = "Annotation not in this container"
    description = "A row names an annotation that is not in this container, or repeats one. Check the ids."


class GoldAlreadySettled(Conflict):
    code = "gold_already_settled"
    title = "Item already has a gold annotation"
    description = "This item already has a gold annotation of this type. Change that one instead (PATCH)."


class ConcurrentChange(Conflict):
    code = "concurrent_change"
    title = "Deleted concurrently"
    description = (
        "Someone deleted this annotation while your request ran (a change without If-Match is written over a "
        "concurrent one; a delete is not). Nothing was written."
    )


class UnknownVersion(ValidationFailed):
    code = "unknown_version"
    title = "No such version"
    description = "The annotation never had this version. `GET /annotations/{id}/history` lists the versions."


@dataclass(frozen=True, slots=True)
class AnnotationAccess:
    annotation: Annotation
    role: Role
    project_id: uuid.UUID
    require_if_match: bool = False


@dataclass(frozen=True, slots=True)
class HistoryAccess:
    """An annotation's history: of a live annotation for anyone who may read it, of a deleted one for managers."""

    annotation_id: uuid.UUID


def etag_of(annotation: Annotation | AnnotationRead) -> str:
    return f'"{annotation.version}"'


def if_match_allows(header: str | None, current_etag: str) -> bool:
    """RFC 9110 If-Match: `*` or a list of strong ETags; weak ones never match."""
    if header is None:
        return True
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or current_etag in candidates


def _unconditional(if_match: str | None) -> bool:
    """No `If-Match`, or `*`: the change is wanted whatever the current version."""
    return if_match is None or "*" in (part.strip() for part in if_match.split(","))


_ANNOTATION = TypeAdapter(AnnotationRead)


def _to_read(annotation: Annotation) -> AnnotationRead:
    return AnnotationRead.model_validate(annotation)


def _revision_of(annotation: AnnotationRead, action: str, user: User, when: datetime) -> dict[str, Any]:
    return {
        "annotation_id": annotation.id,
        "version": annotation.version,
        "container_id": annotation.container_id,
        "item_id": annotation.item_id,
        "action": action,
        **{column: getattr(annotation, column) for column in REVISION_CONTENT},
        "changed_by": user.id,
        "changed_at": when,
    }


def annotations_page_cache_entry(
    scope_container_id: uuid.UUID,
    params: PageParams,
    *,
    item_id: uuid.UUID | None = None,
    container_id: uuid.UUID | None = None,
    type_: str | None = None,
    created_by: uuid.UUID | None = None,
) -> tuple[str, tuple[str, str]]:
    """The cache key and scopes of a page of annotations (of an item, or of a container, `scope_container_id`
    being the container either way)."""
    filters = [str(item_id or ""), str(container_id or ""), type_, str(created_by or "")]
    key = "annotations:" + orjson.dumps([*filters, params.limit, params.include_total, params.cursor]).decode()
    return key, (container_scope(scope_container_id), annotation_scope(scope_container_id))


class AnnotationService:
    async def access(self, session: AsyncSession, *, annotation_id: uuid.UUID, user: User) -> AnnotationAccess:
        found = await annotation_repository.get_with_role(session, annotation_id, user)
        if found is None:
            raise NotFound("No such annotation.")
        annotation, role = authorize_found((found[0], found[1]), user, Action.read, "annotation")
        return AnnotationAccess(annotation=annotation, role=role, project_id=found[2], require_if_match=found[3])

    async def history_access(self, session: AsyncSession, *, annotation_id: uuid.UUID, user: User) -> HistoryAccess:
        found = await annotation_repository.get_with_role(session, annotation_id, user)
        if found is not None:
            authorize_found((found[0], found[1]), user, Action.read, "annotation")
            return HistoryAccess(annotation_id=annotation_id)
        deleted = await annotation_repository.deleted_with_role(session, annotation_id, user)
        # Anyone below manager learns nothing about a deleted annotation, not even that it existed.
        if deleted is None or not role_allows(effective_role(deleted[0], user), Action.manage):
            raise NotFound("No such annotation.")
        return HistoryAccess(annotation_id=annotation_id)

    async def history(
        self, session: AsyncSession, *, access: HistoryAccess, params: PageParams
    ) -> tuple[list[AnnotationRevisionRead], str | None, int | None]:
        revisions, cursor, total = await annotation_repository.revisions(session, access.annotation_id, params)
        return [AnnotationRevisionRead.model_validate(revision) for revision in revisions], cursor, total

    async def page(
        self,
        session: AsyncSession,
        params: PageParams,
        *,
        scope_container_id: uuid.UUID,
        item_id: uuid.UUID | None = None,
        container_id: uuid.UUID | None = None,
        type_: str | None = None,
        created_by: uuid.UUID | None = None,
    ) -> tuple[bytes, str | None]:
        """The page's JSON and the next cursor. Pages are cached until the container (`scope_container_id`, the
        item's for an item's annotations), its items or its annotations change."""
        cache = cache_of(session)
        key, scopes = annotations_page_cache_entry(
            scope_container_id, params, item_id=item_id, container_id=container_id, type_=type_, created_by=created_by
        )
        generations: list[int] = []
        if cache is not None:
            page, generations = await lookup_page(session, cache, key, scopes)
            if page is not None:
                return page
        annotations, cursor, total = await annotation_repository.page(
            session, params, item_id=item_id, container_id=container_id, type_=type_, created_by=created_by
        )
        items_json = b"[" + b",".join(_ANNOTATION.serializer.to_json(_to_read(a)) for a in annotations) + b"]"
        body = page_body(items_json, cursor, total)
        # A sensitive project's annotations were decrypted as they loaded: their page must not rest in the cache.
        if cache is not None and not any(loaded_sealed(annotation) for annotation in annotations):
            await store_page(cache, key, generations, body, cursor)
        return body, cursor

    async def create(
        self, session: AsyncSession, *, access: ItemAccess, user: User, data: AnnotationCreate
    ) -> AnnotationRead:
        item = access.item
        if data.is_gold:
            self._may_adjudicate(access.role)
            if await annotation_repository.gold_of_item(session, item.id, data.type) is not None:
                raise GoldAlreadySettled(f"This item already has a gold {data.type} annotation.")
        if data.end_offset is not None and data.end_offset > len(item.content):
            raise OffsetsOutOfRange(
                f"end_offset {data.end_offset} is past the content's {len(item.content)} characters.",
                errors=[{"loc": ["body", "end_offset"], "msg": "past the end of the content", "type": "offsets"}],
            )
        row = self._row(item_id=item.id, container_id=item.container_id, user=user, data=data)
        sensitive = loaded_sealed(item)
        await annotation_repository.insert_many(session, [row], sensitive=sensitive)
        await self._record_created(session, access.project_id, [row], user, sensitive=sensitive)
        audit_service.record(
            session,
            action="annotation.create",
            resource_type="annotation",
            resource_id=row["id"],
            project_id=access.project_id,
            after={"item_id": item.id, "type": data.type},
        )
        created = AnnotationRead.model_validate(row)
        await emit(session, access.project_id, ANNOTATION_CREATED, event_data([created]))
        return created

    async def bulk_create(
        self, session: AsyncSession, *, access: ContainerAccess, user: User, rows: list[AnnotationBulkRow]
    ) -> list[AnnotationRead]:
        container_id = access.container.id
        if any(row.is_gold for row in rows):
            self._may_adjudicate(access.role)
        sensitive = await is_sensitive(session, access.container.project_id)
        by_id, by_external_id = await annotation_repository.items_by_ref(
            session,
            container_id,
            ids=[row.item_id for row in rows if row.item_id is not None],
            external_ids=[row.item_external_id for row in rows if row.item_external_id is not None],
            sensitive=sensitive,
        )
        errors: list[dict[str, Any]] = []
        values: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            item_id: uuid.UUID | None
            length: int | None
            if row.item_id is not None:
                item_id, length = row.item_id, by_id.get(row.item_id)
                field = "item_id"
            else:
                item_id, length = by_external_id.get(row.item_external_id or "", (None, None))
                field = "item_external_id"
            if item_id is None or length is None:
                errors.append(
                    {
                        "loc": ["body", "items", index, field],
                        "msg": "No such item in this container.",
                        "type": ItemNotInContainer.code,
                    }
                )
                continue
            if row.end_offset is not None and row.end_offset > length:
                errors.append(
                    {
                        "loc": ["body", "items", index, "end_offset"],
                        "msg": "Past the end of the content.",
                        "type": OffsetsOutOfRange.code,
                    }
                )
                continue
            values.append(self._row(item_id=item_id, container_id=container_id, user=user, data=row))
        if errors:
            raise BulkRowsInvalid(f"{len(errors)} of {len(rows)} rows are invalid; nothing was written.", errors=errors)
        await annotation_repository.insert_many(session, values, sensitive=sensitive)
        await self._record_created(session, access.container.project_id, values, user, sensitive=sensitive)
        audit_service.record(
            session,
            action="annotation.bulk_create",
            resource_type="container",
            resource_id=container_id,
            project_id=access.container.project_id,
            after={"annotations_created": len(values)},
        )
        created = [AnnotationRead.model_validate(value) for value in values]
        await emit(session, access.container.project_id, ANNOTATION_CREATED, event_data(created))
        return created

    async def bulk_update(
        self,
        session: AsyncSession,
        *,
        access: ContainerAccess,
        user: User,
        rows: list[AnnotationBulkUpdateRow],
    ) -> list[AnnotationRead]:
        """Changes many annotations of the container under the single-annotation rules, all or none; each
        changed annotation's `version` goes up by one."""
        ids = [row.id for row in rows]
        found = await self._bulk_rows(session, access, user, ids)
        now = utcnow()
        values = [
            {
                "id": row.id,
                "type": row.type if row.type is not None else found[row.id].type,
                "data": row.data if row.data is not None else found[row.id].data,
                "version": found[row.id].version + 1,
                "updated_at": now,
            }
            for row in rows
        ]
        sensitive = await is_sensitive(session, access.container.project_id)
        await annotation_repository.update_many(session, access.container.id, values, sensitive=sensitive)
        changed_by = context_of(session).user_id
        await annotation_repository.insert_revisions_of_current(
            session, ids, action="updated", changed_by=changed_by, now=now
        )
        await change_service.record(
            session,
            project_id=access.container.project_id,
            resource_type="annotation",
            action="updated",
            entries=[(value["id"], access.container.id, value["version"]) for value in values],
        )
        audit_service.record(
            session,
            action="annotation.bulk_update",
            resource_type="container",
            resource_id=access.container.id,
            project_id=access.container.project_id,
            after={"annotations_updated": len(values)},
        )
        updated = [_to_read(a) for a in await annotation_repository.read_many(session, access.container.id, ids)]
        await emit(session, access.container.project_id, ANNOTATION_UPDATED, event_data(updated))
        return updated

    async def bulk_delete(
        self, session: AsyncSession, *, access: ContainerAccess, user: User, ids: list[uuid.UUID]
    ) -> None:
        """Deletes many annotations of the container under the single-annotation rules, all or none."""
        await self._bulk_rows(session, access, user, ids, field="ids")
        unique = list(dict.fromkeys(ids))
        gone = [_to_read(a) for a in await annotation_repository.read_many(session, access.container.id, unique)]
        selected = annotation_repository.ids_in(access.container.id, unique)
        changed_by, now = context_of(session).user_id, utcnow()
        await record_deletions(
            session, selected, project_id=access.container.project_id, changed_by=changed_by, now=now
        )
        await annotation_repository.delete_many(session, access.container.id, unique)
        await emit(session, access.container.project_id, ANNOTATION_DELETED, event_data(gone))
        audit_service.record(
            session,
            action="annotation.bulk_delete",
            resource_type="container",
            resource_id=access.container.id,
            project_id=access.container.project_id,
            before={"annotations_deleted": len(unique)},
        )

    async def _bulk_rows(
        self,
        session: AsyncSession,
        access: ContainerAccess,
        user: User,
        ids: list[uuid.UUID],
        *,
        field: str = "items",
    ) -> dict[uuid.UUID, Any]:
        """The rows named, once each, in the container, and each the caller's to change: else 422 naming the
        missing or repeated rows, or 403 naming those the caller may not change."""
        found = await annotation_repository.authorship(session, access.container.id, ids)
        missing: list[dict[str, Any]] = []
        forbidden: list[dict[str, Any]] = []
        seen: set[uuid.UUID] = set()
        may_adjudicate = role_allows(access.role, Action.adjudicate)
        for index, annotation_id in enumerate(ids):
            loc = ["body", field, index, *(["id"] if field == "items" else [])]
            row = found.get(annotation_id)
            if row is None or annotation_id in seen:
                message = "Repeats an earlier row." if row is not None else "No such annotation in this container."
                missing.append({"loc": loc, "msg": message, "type": AnnotationNotInContainer.code})
            elif not may_adjudicate and (row.created_by != user.id or row.is_gold):
                forbidden.append({"loc": loc, "msg": "Not yours to change.", "type": Forbidden.code})
            seen.add(annotation_id)
        if missing:
            message = f"{len(missing)} of {len(ids)} rows are invalid; nothing was written."
            raise BulkRowsInvalid(message, errors=missing)
        if forbidden:
            raise Forbidden(
                f"Your role ({access.role.value}) may change only your own, non-gold annotations: "
                f"{len(forbidden)} rows are not; nothing was written.",
                errors=forbidden,
            )
        return found

    async def update(
        self,
        session: AsyncSession,
        *,
        access: AnnotationAccess,
        user: User,
        data: AnnotationUpdate,
        if_match: str | None,
    ) -> AnnotationRead:
        annotation = self._writable(access, user, if_match)
        changes = data.model_dump(exclude_unset=True)
        if not changes:
            return _to_read(annotation)
        return await self._write(session, access, user, changes, if_match=if_match, action="annotation.update")

    async def revert(
        self,
        session: AsyncSession,
        *,
        access: AnnotationAccess,
        user: User,
        version: int,
        if_match: str | None,
    ) -> AnnotationRead:
        """Makes an earlier version's content (type, data, offsets) current again, as a new version."""
        annotation = self._writable(access, user, if_match)
        revision = await annotation_repository.revision(session, annotation.id, version)
        if revision is None or version >= annotation.version:
            raise UnknownVersion(
                f"Version {version} is not an earlier version of this annotation (now at {annotation.version}).",
                errors=[{"loc": ["body", "version"], "msg": "not an earlier version", "type": UnknownVersion.code}],
            )
        changes = {column: getattr(revision, column) for column in ("type", "data", "start_offset", "end_offset")}
        return await self._write(
            session, access, user, changes, if_match=if_match, action="annotation.revert", reverted_from=version
        )

    async def _write(
        self,
        session: AsyncSession,
        access: AnnotationAccess,
        user: User,
        changes: dict[str, Any],
        *,
        if_match: str | None,
        action: str,
        reverted_from: int | None = None,
    ) -> AnnotationRead:
        """Writes `changes` as the next version (if nobody wrote one meanwhile), with its revision and feed entry."""
        annotation = access.annotation
        sensitive = loaded_sealed(annotation)
        if changes.get("end_offset") is not None:
            length = await annotation_repository.content_length(session, annotation.item_id, sensitive=sensitive)
            if changes["end_offset"] > length:
                raise OffsetsOutOfRange(
                    f"end_offset {changes['end_offset']} is past the content's {length} characters."
                )
        changes["updated_at"] = utcnow()
        for attempt in range(2):
            if attempt:
                annotation = await self._newest(session, access, user, if_match)
            if await annotation_repository.update_if_version(
                session, annotation, expected_version=annotation.version, values=changes, sensitive=sensitive
            ):
                break
        else:
            raise ConcurrentChange()
        before = _to_read(annotation)
        await session.refresh(annotation)
        after = _to_read(annotation)
        revision = _revision_of(
            after, "reverted" if reverted_from is not None else "updated", user, changes["updated_at"]
        )
        revision["reverted_from"] = reverted_from
        await annotation_repository.insert_revisions(session, [revision], sensitive=sensitive)
        await change_service.record(
            session,
            project_id=access.project_id,
            resource_type="annotation",
            action="updated",
            entries=[(after.id, after.container_id, after.version)],
        )
        old, new = changed_fields(before, after)
        if sensitive:
            old, new = redact(old, ("data",)), redact(new, ("data",))
        audit_service.record(
            session,
            action=action,
            resource_type="annotation",
            resource_id=annotation.id,
            project_id=access.project_id,
            before=old,
            after=new,
        )
        await emit(session, access.project_id, ANNOTATION_UPDATED, event_data([after]))
        return after

    async def delete(
        self, session: AsyncSession, *, access: AnnotationAccess, user: User, if_match: str | None
    ) -> None:
        annotation = self._writable(access, user, if_match)
        for attempt in range(2):
            if attempt:
                annotation = await self._newest(session, access, user, if_match)
            if await annotation_repository.delete_if_version(session, annotation, expected_version=annotation.version):
                break
        else:
            raise ConcurrentChange()
        await emit(session, access.project_id, ANNOTATION_DELETED, event_data([_to_read(annotation)]))
        gone = _to_read(annotation).model_copy(update={"version": annotation.version + 1})
        sensitive = loaded_sealed(annotation)
        await annotation_repository.insert_revisions(
            session, [_revision_of(gone, "deleted", user, utcnow())], sensitive=sensitive
        )
        await change_service.record(
            session,
            project_id=access.project_id,
            resource_type="annotation",
            action="deleted",
            entries=[(gone.id, gone.container_id, gone.version)],
        )
        audit_service.record(
            session,
            action="annotation.delete",
            resource_type="annotation",
            resource_id=annotation.id,
            project_id=access.project_id,
            before={
                "item_id": annotation.item_id,
                "type": annotation.type,
                "data": SEALED_PLACEHOLDER if sensitive else annotation.data,
                "created_by": annotation.created_by,
                "version": annotation.version,
            },
        )

    async def _newest(
        self, session: AsyncSession, access: AnnotationAccess, user: User, if_match: str | None
    ) -> Annotation:
        """After a conditional write found a newer version than the one read: with an `If-Match` naming a
        version, 412 (the client's base is stale). Without one (or with `*`) the client asked for its change
        whatever the current version, so the newest committed row is read again, locked so that the next
        write cannot miss it, checked under the same rules, and written over: both edits are versions with
        their revisions, none is lost, and the outcome does not hang on milliseconds. Gone meanwhile: 409."""
        if not _unconditional(if_match):
            raise PreconditionFailed(f"The annotation changed since version {access.annotation.version}; re-read it.")
        newest = await annotation_repository.lock_newest(session, access.annotation.id)
        if newest is None:
            raise ConcurrentChange("Someone deleted this annotation while your request ran.")
        return self._writable(replace(access, annotation=newest), user, if_match)

    def _writable(self, access: AnnotationAccess, user: User, if_match: str | None) -> Annotation:
        annotation = access.annotation
        own = annotation.created_by == user.id
        # The gold answer is the reviewers' to change, whoever wrote it.
        needed = Action.annotate if own and not annotation.is_gold else Action.adjudicate
        if not role_allows(access.role, needed):
            raise Forbidden(
                f"Your role ({access.role.value}) may not "
                + (
                    "change gold annotations."
                    if annotation.is_gold
                    else "annotate."
                    if own
                    else "change other people's annotations."
                )
            )
        if if_match is None and access.require_if_match:
            raise PreconditionRequired("This project requires `If-Match` with the annotation's ETag for changes.")
        if not if_match_allows(if_match, etag_of(annotation)):
            raise PreconditionFailed(f"The annotation is at version {annotation.version}; re-read it and retry.")
        return annotation

    async def _record_created(
        self,
        session: AsyncSession,
        project_id: uuid.UUID,
        rows: list[dict[str, Any]],
        user: User,
        *,
        sensitive: bool = False,
    ) -> None:
        await annotation_repository.insert_revisions(
            session, first_revisions(rows, changed_by=user.id), sensitive=sensitive
        )
        await change_service.record(
            session,
            project_id=project_id,
            resource_type="annotation",
            action="created",
            entries=[(row["id"], row["container_id"], 1) for row in rows],
        )

    def _may_adjudicate(self, role: Role) -> None:
        if not role_allows(role, Action.adjudicate):
            raise Forbidden(f"Your role ({role.value}) may not write gold annotations (reviewers and above).")

    def _row(
        self, *, item_id: uuid.UUID, container_id: uuid.UUID, user: User, data: AnnotationCreate
    ) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": uuid7(),
            "item_id": item_id,
            "container_id": container_id,
            "type": data.type,
            "data": data.data,
            "start_offset": data.start_offset,
            "end_offset": data.end_offset,
            "created_by": user.id,
            "version": 1,
            "is_gold": data.is_gold,
            "created_at": now,
            "updated_at": now,
        }


annotation_service = AnnotationService()
