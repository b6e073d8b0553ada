from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import Field, StringConstraints

from annotation_platform.core.schemas import Id, InputModel, PatchModel, ReadModel
from annotation_platform.models import Webhook, WebhookDelivery


class EventType(StrEnum):
    """What a webhook can be told about (the `type` of a delivery's body)."""

    job_finished = "job.finished"
    annotation_created = "annotation.created"
    annotation_updated = "annotation.updated"
    annotation_deleted = "annotation.deleted"
    item_created = "item.created"
    item_updated = "item.updated"
    item_deleted = "item.deleted"
    version_created = "version.created"


Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EventType), examples=[["job.finished"]])]
WebhookDescription = Annotated[str, StringConstraints(max_length=500)]
MAX_GRACE_SECONDS = 7 * 24 * 3600


class WebhookCreate(InputModel):
    url: Url = Field(
        description="Where to POST the events: https (http only where the server allows it); it must resolve to "
        "a public address unless the server allows private targets.",
        examples=["https://example.org/hooks/annotation-platform"],
    )
    event_types: EventTypes
    description: WebhookDescription = ""


class WebhookUpdate(PatchModel):
    url: Url | None = Field(default=None, examples=["https://example.org/hooks/annotation-platform"])
    event_types: EventTypes | None = None
    description: WebhookDescription | None = Field(default=None, examples=["The lab's dashboard"])
    active: bool | None = Field(
        default=None,
        description="false pauses deliveries (they wait); true resumes a paused or disabled webhook, "
        "in order, and resets its failure count.",
    )


class WebhookSecretRotate(InputModel):
    keep_previous_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long calls are also signed with the old secret; unset = WEBHOOK_SECRET_GRACE_SECONDS, "
        "0 = stop using it at once (e.g. it leaked).",
    )


class WebhookRead(ReadModel):
    id: Id
    project_id: Id
    url: str
    description: str
    event_types: list[EventType]
    active: bool
    disabled_reason: str | None = Field(description="Why the server disabled it (repeated failures), if it did.")
    disabled_at: datetime | None
    consecutive_failures: int = Field(description="Failed calls since the last successful one.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then calls carry a second signature made with the secret before the last rotation."
    )
    created_by: Id | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookRead:
        return cls.model_validate(webhook)


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown this once; it is stored encrypted and cannot be read "
        "again (rotate it to get a new one)."
    )


class WebhookSecretRead(ReadModel):
    secret: str = Field(description="The new signing secret, shown this once.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then calls are signed with both the new and the old secret."
    )


class WebhookDeliveryRead(ReadModel):
    id: Id
    webhook_id: Id
    event_id: Id = Field(description="Sent as `webhook-id`; the same for a redelivery, so receivers can de-duplicate.")
    event_type: EventType
    payload: dict[str, Any] = Field(description="The body sent.")
    status: str = Field(
        description="`pending` (waiting for an attempt or a retry), `succeeded` or `failed` (given up)."
    )
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response_status: int | None = Field(description="The HTTP status of the last attempt's answer.")
    response_snippet: str | None = Field(description="The first 512 bytes of the last answer's body.")
    latency_ms: int | None = Field(description="How long the last attempt took.")
    error: str | None = Field(description="Why the last attempt failed, when no answer came or it was refused.")
    redelivery_of: Id | None = Field(description="The delivery this one repeats, for manual redeliveries.")
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery, payload: str | None = None) -> WebhookDeliveryRead:
        """`payload`: the opened body, when the stored one is sealed (sensitive projects)."""
        values = {name: getattr(delivery, name) for name in cls.model_fields if name != "payload"}
        return cls(payload=orjson.loads(payload if payload is not None else delivery.payload), **values)
