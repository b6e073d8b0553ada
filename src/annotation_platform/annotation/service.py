"""Annotation rules: annotators write their own, reviewers anyone's; offsets stay inside the content;
every change bumps `version`, and a stale `If-Match` is refused instead of silently overwriting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.repository import annotation_repository
from annotation_platform.annotation.schemas import (
    AnnotationBulkRow,
    AnnotationBulkUpdateRow,
    AnnotationCreate,
    AnnotationRead,
    AnnotationUpdate,
)
from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.types import utcnow
from annotation_platform.item.service import BulkRowsInvalid, ItemAccess, ItemNotInContainer
from annotation_platform.models import Annotation, Role, User
from annotation_platform.project.permissions import Action, authorize_found, role_allows


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
    title = "Changed concurrently"
    description = "Someone changed this annotation while your request ran. Re-read it and retry."


@dataclass(frozen=True, slots=True)
class AnnotationAccess:
    annotation: Annotation
    role: Role
    project_id: uuid.UUID


def etag_of(annotation: Annotation | AnnotationRead) -> str:
    return f'"{annotation.version}"'


def if_match_allows(header: str | None, current_etag: str) -> bool:
    """RFC 9110 If-Match: `*` or a list of strong ETags; weak ones never match."""
    if header is None:
        return True
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or current_etag in candidates


def _to_read(annotation: Annotation) -> AnnotationRead:
    return AnnotationRead.model_validate(annotation)


class AnnotationService:
    async def access(self, session: AsyncSession, *, annotation_id: uuid.UUID, user: User) -> AnnotationAccess:
        found = await annotation_repository.get_with_role(session, annotation_id, user)
        if found is None:
            raise NotFound("No such annotation.")
        annotation, role = authorize_found(
            None if found is None else (found[0], found[1]), user, Action.read, "annotation"
        )
        return AnnotationAccess(annotation=annotation, role=role, project_id=found[2])

    async def page(
        self,
        session: AsyncSession,
        params: PageParams,
        *,
        item_id: uuid.UUID | None = None,
        container_id: uuid.UUID | None = None,
        type_: str | None = None,
        created_by: uuid.UUID | None = None,
    ) -> tuple[list[AnnotationRead], str | None, int | None]:
        annotations, cursor, total = await annotation_repository.page(
            session, params, item_id=item_id, container_id=container_id, type_=type_, created_by=created_by
        )
        return [_to_read(a) for a in annotations], cursor, total

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
        await annotation_repository.insert_many(session, [row])
        audit_service.record(
            session,
            action="annotation.create",
            resource_type="annotation",
            resource_id=row["id"],
            project_id=access.project_id,
            after={"item_id": item.id, "type": data.type},
        )
        return AnnotationRead.model_validate(row)

    async def bulk_create(
        self, session: AsyncSession, *, access: ContainerAccess, user: User, rows: list[AnnotationBulkRow]
    ) -> list[AnnotationRead]:
        container_id = access.container.id
        if any(row.is_gold for row in rows):
            self._may_adjudicate(access.role)
        by_id, by_external_id = await annotation_repository.items_by_ref(
            session,
            container_id,
            ids=[row.item_id for row in rows if row.item_id is not None],
            external_ids=[row.item_external_id for row in rows if row.item_external_id is not None],
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
        await annotation_repository.insert_many(session, values)
        audit_service.record(
            session,
            action="annotation.bulk_create",
            resource_type="container",
            resource_id=container_id,
            project_id=access.container.project_id,
            after={"annotations_created": len(values)},
        )
        return [AnnotationRead.model_validate(value) for value in values]

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
        await annotation_repository.update_many(session, access.container.id, values)
        audit_service.record(
            session,
            action="annotation.bulk_update",
            resource_type="container",
            resource_id=access.container.id,
            project_id=access.container.project_id,
            after={"annotations_updated": len(values)},
        )
        return [_to_read(a) for a in await annotation_repository.read_many(session, access.container.id, ids)]

    async def bulk_delete(
        self, session: AsyncSession, *, access: ContainerAccess, user: User, ids: list[uuid.UUID]
    ) -> None:
        """Deletes many annotations of the container under the single-annotation rules, all or none."""
        await self._bulk_rows(session, access, user, ids, field="ids")
        unique = list(dict.fromkeys(ids))
        await annotation_repository.delete_many(session, access.container.id, unique)
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
        if changes.get("end_offset") is not None:
            length = await annotation_repository.content_length(session, annotation.item_id)
            if changes["end_offset"] > length:
                raise OffsetsOutOfRange(
                    f"end_offset {changes['end_offset']} is past the content's {length} characters."
                )
        if not changes:
            return _to_read(annotation)
        changes["updated_at"] = utcnow()
        written = await annotation_repository.update_if_version(
            session, annotation, expected_version=annotation.version, values=changes
        )
        if not written:
            raise PreconditionFailed() if if_match is not None else ConcurrentChange()
        before = _to_read(annotation)
        await session.refresh(annotation)
        after = _to_read(annotation)
        old, new = changed_fields(before, after)
        audit_service.record(
            session,
            action="annotation.update",
            resource_type="annotation",
            resource_id=annotation.id,
            project_id=access.project_id,
            before=old,
            after=new,
        )
        return after

    async def delete(
        self, session: AsyncSession, *, access: AnnotationAccess, user: User, if_match: str | None
    ) -> None:
        annotation = self._writable(access, user, if_match)
        deleted = await annotation_repository.delete_if_version(
            session, annotation, expected_version=annotation.version
        )
        if not deleted:
            raise PreconditionFailed() if if_match is not None else ConcurrentChange()
        audit_service.record(
            session,
            action="annotation.delete",
            resource_type="annotation",
            resource_id=annotation.id,
            project_id=access.project_id,
            before={
                "item_id": annotation.item_id,
                "type": annotation.type,
                "data": annotation.data,
                "created_by": annotation.created_by,
                "version": annotation.version,
            },
        )

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
        if not if_match_allows(if_match, etag_of(annotation)):
            raise PreconditionFailed(f"The annotation is at version {annotation.version}; re-read it and retry.")
        return annotation

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
