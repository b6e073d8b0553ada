"""Recording events for webhooks, in the transaction of the change they describe (an outbox).

`emit()` writes one delivery row per active webhook of the project that wants the event type, and sends the
worker a `webhooks.deliver` task per webhook once the transaction commits: a rolled-back change notifies
nobody, and a committed one is sent even if that task is lost (beat's sweep finds the row).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.field_crypto import is_sensitive, key_ring_of, seal_payload
from annotation_platform.core.ids import uuid7
from annotation_platform.core.queue import enqueue_after_commit
from annotation_platform.core.types import utcnow
from annotation_platform.models import DeliveryStatus
from annotation_platform.webhook.repository import webhook_repository
from annotation_platform.webhook.schemas import EventType

DELIVER_TASK = "webhooks.deliver"

JOB_FINISHED = EventType.job_finished
ANNOTATION_CREATED = EventType.annotation_created
ANNOTATION_UPDATED = EventType.annotation_updated
ANNOTATION_DELETED = EventType.annotation_deleted
ITEM_CREATED = EventType.item_created
ITEM_UPDATED = EventType.item_updated
ITEM_DELETED = EventType.item_deleted
VERSION_CREATED = EventType.version_created


def event_body(event_type: EventType, project_id: uuid.UUID, data: dict[str, Any]) -> str:
    """The JSON body receivers get: `{"type", "timestamp", "data": {"project_id", ...}}`."""
    envelope = {"type": event_type.value, "timestamp": utcnow(), "data": {"project_id": str(project_id), **data}}
    # `default=str`: ids may come as the driver's own UUID type (asyncpg's), which orjson does not know.
    return orjson.dumps(envelope, default=str, option=orjson.OPT_UTC_Z).decode()


async def emit(
    session: AsyncSession,
    project_id: uuid.UUID,
    event_type: EventType,
    data: dict[str, Any] | Callable[[], Awaitable[dict[str, Any] | None]],
) -> int:
    """Record `event_type` with `data` (JSON-serialisable by orjson: UUIDs and datetimes are fine) for the
    project's webhooks, inside `session`'s transaction; returns how many deliveries were queued. Costs one
    query when the project has no webhook. `data` may be a coroutine function, called only when a webhook wants
    the event: for data that costs queries to gather (the annotations a delete takes with it); when it returns
    None there is nothing to tell, and no event."""
    wanted = [
        webhook_id
        for webhook_id, types in await webhook_repository.subscribers(session, project_id)
        if event_type in types
    ]
    if not wanted:
        return 0
    gathered = await data() if callable(data) else data
    if gathered is None:
        return 0
    event_id, now = uuid7(), utcnow()
    body = event_body(event_type, project_id, gathered)
    # A sensitive project's events carry its data (annotations): stored sealed, opened when sent.
    key_ring = key_ring_of(session) if await is_sensitive(session, project_id) else None
    await webhook_repository.add_deliveries(
        session,
        [
            {
                "id": delivery_id,
                "webhook_id": webhook_id,
                "event_id": event_id,
                "event_type": event_type.value,
                "payload": body if key_ring is None else seal_payload(key_ring, delivery_id, body),
                "status": DeliveryStatus.pending.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for webhook_id, delivery_id in ((webhook_id, uuid7()) for webhook_id in wanted)
        ],
    )
    for webhook_id in wanted:
        enqueue_after_commit(session, DELIVER_TASK, str(webhook_id))
    return len(wanted)
