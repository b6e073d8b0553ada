"""Encryption of the data of sensitive projects: item content and metadata, annotation data (and their copies).

Stored form, chosen to fit the existing columns on SQLite and PostgreSQL:

- `items.content` (text) holds the ciphertext token `enc:v1:<key id>:...`;
- `items.metadata`, `annotations.data`, `annotation_revisions.data` (JSON) hold that token as a JSON *string*.
  The plaintext of those columns is always a JSON object, so a string there says "sealed": rows describe
  themselves, and readers need not know which project a row belongs to.

Each value is bound (AES-GCM associated data) to `<table>.<column>:<row id>`. A revision is a copy of its
annotation's data that the database makes with INSERT ... SELECT, so revisions share the annotation's context
`annotations.data:<annotation id>`: a token moved to another annotation fails, one moved between versions of the
same annotation does not (docs/security.md).

ORM objects are opened when loaded or refreshed (mapper events below) and sealed again by `before_flush` when a
change to them is flushed; Core reads and writes go through the `open_*`/`seal_*` helpers in the repositories.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, attributes

from annotation_platform.core.crypto import DecryptionError, KeyRing
from annotation_platform.core.errors import AppError, ServiceUnavailable
from annotation_platform.models import Annotation, AnnotationRevision, Item, Project

KEY_RING_INFO_KEY = "key_ring"
_SEALED = "_ap_sealed"
"""Instance attribute marking an ORM object that was loaded sealed, so that its changes are sealed again."""
SEALED_PLACEHOLDER = "[encrypted]"
"""What the audit trail records instead of a sealed value."""


class EncryptionKeyUnavailable(ServiceUnavailable):
    code = "encryption_key_unavailable"
    title = "Encryption key unavailable"
    description = (
        "The data was encrypted with a key that ENCRYPTION_KEYS no longer holds. An operator must put the key back "
        "in the ring; `annotation-platform keys status` shows which key ids are in use."
    )


class EncryptedValueInvalid(AppError):
    code = "encrypted_value_invalid"
    title = "Encrypted value invalid"
    description = (
        "A stored encrypted value does not decrypt with its key: it was altered or moved. Report the request_id."
    )


def key_ring_of(session: AsyncSession | Session) -> KeyRing:
    key_ring = session.info.get(KEY_RING_INFO_KEY)
    if key_ring is None:
        # Sessions from a maker built without a ring (tools, some tests): the settings' ring.
        from annotation_platform.config import get_settings

        key_ring = get_settings().resolved_key_ring()
        session.info[KEY_RING_INFO_KEY] = key_ring
    return key_ring


async def is_sensitive(session: AsyncSession, project_id: uuid.UUID) -> bool:
    """Whether the project is sensitive; asked once per project and process (the flag is set at creation and
    never changes; it was a query on every uncached page)."""
    sensitive = _sensitive_projects.get(project_id)
    if sensitive is None:
        statement = select(Project.sensitive).where(Project.id == project_id)
        found = (await session.execute(statement)).scalar_one_or_none()
        if found is None:  # not committed yet, or gone: nothing to remember
            return False
        if len(_sensitive_projects) >= _SENSITIVE_PROJECTS_SIZE:
            _sensitive_projects.clear()
        sensitive = _sensitive_projects[project_id] = bool(found)
    return sensitive


_SENSITIVE_PROJECTS_SIZE = 100_000
_sensitive_projects: dict[uuid.UUID, bool] = {}


def loaded_sealed(target: Item | Annotation | AnnotationRevision) -> bool:
    """Whether an ORM object was stored sealed, i.e. belongs to a sensitive project: known without a query."""
    return bool(getattr(target, _SEALED, False))


def context(table: str, column: str, row_id: uuid.UUID | str) -> bytes:
    """`<table>.<column>:<row id>`, the id in its canonical form (bulk writers hold ids as 32 hex digits)."""
    if not isinstance(row_id, uuid.UUID):
        row_id = uuid.UUID(row_id)
    return f"{table}.{column}:{row_id}".encode()


def item_content_context(item_id: uuid.UUID | str) -> bytes:
    return context("items", "content", item_id)


def item_metadata_context(item_id: uuid.UUID | str) -> bytes:
    return context("items", "metadata", item_id)


def annotation_data_context(annotation_id: uuid.UUID | str) -> bytes:
    return context("annotations", "data", annotation_id)


def export_file_context(job_id: uuid.UUID) -> bytes:
    return context("jobs", "export_file", job_id)


def snapshot_file_context(version_id: uuid.UUID) -> bytes:
    return context("project_versions", "snapshot_file", version_id)


def delivery_payload_context(delivery_id: uuid.UUID) -> bytes:
    return context("webhook_deliveries", "payload", delivery_id)


def decrypt_text(key_ring: KeyRing, token: str, ctx: bytes) -> str:
    """Decrypts, answering 503 `encryption_key_unavailable` when the key left the ring."""
    try:
        return key_ring.decrypt_text(token, context=ctx)
    except DecryptionError as error:
        if not key_ring.holds_key_of(token):
            raise EncryptionKeyUnavailable(
                "This data was encrypted with a key that is no longer configured; ask an operator."
            ) from error
        raise EncryptedValueInvalid() from error


def is_sealed_json(value: Any) -> bool:
    return isinstance(value, str) and KeyRing.is_ciphertext(value)


def seal_json(key_ring: KeyRing, value: Any, ctx: bytes) -> str:
    return key_ring.encrypt(orjson.dumps(value), context=ctx)


def open_json(key_ring: KeyRing, stored: Any, ctx: bytes) -> Any:
    """The plaintext of a JSON column: decrypted when sealed, else as stored."""
    if not is_sealed_json(stored):
        return stored
    return orjson.loads(decrypt_text(key_ring, stored, ctx))


def open_content(key_ring: KeyRing, content: str, metadata: Any, item_id: uuid.UUID) -> str:
    """An item's content; sealed exactly when its metadata is (both are written together)."""
    if is_sealed_json(metadata) and KeyRing.is_ciphertext(content):
        return decrypt_text(key_ring, content, item_content_context(item_id))
    return content


def seal_item_values(key_ring: KeyRing, item_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """A copy of an item's column values (`content`, `metadata_`) with those present sealed."""
    sealed = dict(values)
    if "content" in sealed:
        sealed["content"] = key_ring.encrypt_text(sealed["content"], context=item_content_context(item_id))
    if "metadata_" in sealed:
        sealed["metadata_"] = seal_json(key_ring, sealed["metadata_"], item_metadata_context(item_id))
    return sealed


def seal_data(key_ring: KeyRing, values: dict[str, Any], *, id_key: str = "id") -> dict[str, Any]:
    """A copy of an annotation's (or revision's) column values with `data` sealed to the annotation."""
    if "data" not in values:
        return values
    return {**values, "data": seal_json(key_ring, values["data"], annotation_data_context(values[id_key]))}


def open_item_row(key_ring: KeyRing, row: Any) -> dict[str, Any]:
    """A plain row with `content` and `metadata_` (or `metadata`) columns, as a dict with them opened."""
    values = dict(row._mapping)
    name = "metadata_" if "metadata_" in values else "metadata"
    stored = values[name]
    if "content" in values:
        values["content"] = open_content(key_ring, values["content"], stored, values["id"])
    values[name] = open_json(key_ring, stored, item_metadata_context(values["id"]))
    return values


def open_data(key_ring: KeyRing, stored: Any, annotation_id: uuid.UUID) -> Any:
    return open_json(key_ring, stored, annotation_data_context(annotation_id))


def seal_payload(key_ring: KeyRing, delivery_id: uuid.UUID, payload: str) -> str:
    return key_ring.encrypt_text(payload, context=delivery_payload_context(delivery_id))


def open_payload(key_ring: KeyRing, delivery_id: uuid.UUID, payload: str) -> str:
    """A webhook delivery's body: the deliveries of sensitive projects are stored sealed."""
    if KeyRing.is_ciphertext(payload):
        return decrypt_text(key_ring, payload, delivery_payload_context(delivery_id))
    return payload


def redact(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Audit `before`/`after` of a sensitive project: sealed values are named, never recorded."""
    return {key: SEALED_PLACEHOLDER if key in names else value for key, value in fields.items()}


# ORM objects: opened on load, sealed again on flush, opened after it.


def _session_of(context: Any) -> Session:
    session: Session = context.session
    return session


def _open_item(target: Item, key_ring: KeyRing) -> None:
    metadata = target.__dict__.get("metadata_")
    if not is_sealed_json(metadata):
        return
    content = target.__dict__.get("content", "")
    attributes.set_committed_value(target, "content", open_content(key_ring, content, metadata, target.id))
    attributes.set_committed_value(target, "metadata_", open_json(key_ring, metadata, item_metadata_context(target.id)))
    setattr(target, _SEALED, True)


def _open_annotation(target: Annotation | AnnotationRevision, key_ring: KeyRing) -> None:
    stored = target.__dict__.get("data")
    if not is_sealed_json(stored):
        return
    annotation_id = target.id if isinstance(target, Annotation) else target.annotation_id
    attributes.set_committed_value(target, "data", open_data(key_ring, stored, annotation_id))
    setattr(target, _SEALED, True)


def _on_load(target: Any, context: Any) -> None:
    key_ring = key_ring_of(_session_of(context))
    if isinstance(target, Item):
        _open_item(target, key_ring)
    else:
        _open_annotation(target, key_ring)


def _on_refresh(target: Any, context: Any, _attrs: Any) -> None:
    _on_load(target, context)


for _model in (Item, Annotation, AnnotationRevision):
    event.listen(_model, "load", _on_load)
    event.listen(_model, "refresh", _on_refresh)


@event.listens_for(Session, "before_flush")
def _seal_before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Changes to objects loaded sealed are written sealed; `after_flush_postexec` opens them again."""
    sealed: list[Any] = []
    for target in session.dirty:
        if not getattr(target, _SEALED, False):
            continue
        key_ring = key_ring_of(session)
        if isinstance(target, Item):
            target.content = key_ring.encrypt_text(target.content, context=item_content_context(target.id))
            target.metadata_ = seal_json(key_ring, target.metadata_, item_metadata_context(target.id))  # type: ignore[assignment]
        elif isinstance(target, Annotation):
            target.data = seal_json(key_ring, target.data, annotation_data_context(target.id))  # type: ignore[assignment]
        sealed.append(target)
    if sealed:
        session.info.setdefault("_ap_reopen", []).extend(sealed)


@event.listens_for(Session, "after_flush_postexec")
def _open_after_flush(session: Session, _flush_context: Any) -> None:
    pending = session.info.pop("_ap_reopen", None)
    if not pending:
        return
    key_ring = key_ring_of(session)
    for target in pending:
        if isinstance(target, Item):
            _open_item(target, key_ring)
        else:
            _open_annotation(target, key_ring)
