"""Webhook rules: URLs are checked against SSRF when registered (and again at every call), secrets are shown
once and stored encrypted with the key ring, deliveries are listed and can be sent again."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service, changed_fields
from annotation_platform.config import Settings
from annotation_platform.core.crypto import DecryptionError, KeyRing
from annotation_platform.core.errors import Conflict, NotFound, ValidationFailed
from annotation_platform.core.field_crypto import key_ring_of, open_payload, seal_payload
from annotation_platform.core.ids import uuid7
from annotation_platform.core.outbound import TargetRefused, resolve
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.queue import enqueue_after_commit
from annotation_platform.core.types import utcnow
from annotation_platform.models import DeliveryStatus, Webhook, WebhookDelivery
from annotation_platform.project.service import ProjectAccess
from annotation_platform.webhook.events import DELIVER_TASK
from annotation_platform.webhook.repository import webhook_repository
from annotation_platform.webhook.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookSecretRead,
    WebhookSecretRotate,
    WebhookUpdate,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret  # nosec B105
SECRET_BYTES = 32


class WebhookTargetRefused(ValidationFailed):
    code = "webhook_target_refused"
    title = "Webhook URL refused"
    description = (
        "The URL is not https (where required), cannot be resolved, or resolves to a private, loopback, "
        "link-local or reserved address. Use a public https URL (an administrator may allow private targets)."
    )


class DeliveryNotFinished(Conflict):
    code = "delivery_not_finished"
    title = "Delivery still pending"
    description = "Only a delivery that succeeded or was given up can be sent again; this one is still pending."


def secret_context(webhook_id: uuid.UUID) -> bytes:
    return b"webhooks.secret:" + str(webhook_id).encode()


def previous_secret_context(webhook_id: uuid.UUID) -> bytes:
    return b"webhooks.previous_secret:" + str(webhook_id).encode()


def new_secret() -> str:
    """Standard Webhooks' format: `whsec_` and the base64 of the key bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def check_target(url: str, settings: Settings) -> None:
    try:
        await resolve(
            url,
            allow_private=settings.webhook_allow_private_targets,
            allow_http=settings.webhooks_allow_http,
            seconds=settings.webhook_timeout_seconds,
        )
    except TargetRefused as exc:
        raise WebhookTargetRefused(
            f"The webhook URL is refused: {exc}.",
            errors=[{"loc": ["body", "url"], "msg": str(exc), "type": WebhookTargetRefused.code}],
        ) from None


class WebhookService:
    async def create(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user_id: uuid.UUID,
        data: WebhookCreate,
        settings: Settings,
        key_ring: KeyRing,
    ) -> WebhookCreated:
        await check_target(data.url, settings)
        webhook_id, secret = uuid7(), new_secret()
        webhook = Webhook(
            id=webhook_id,
            project_id=access.project.id,
            url=data.url,
            description=data.description,
            event_types=list(dict.fromkeys(event.value for event in data.event_types)),
            secret=key_ring.encrypt_text(secret, context=secret_context(webhook_id)),
            active=True,
            consecutive_failures=0,
            created_by=user_id,
        )
        await webhook_repository.add(session, webhook)
        read = WebhookRead.of(webhook)
        audit_service.record(
            session,
            action="webhook.create",
            resource_type="webhook",
            resource_id=webhook_id,
            project_id=access.project.id,
            after=read.model_dump(include={"url", "event_types", "description"}),
        )
        return WebhookCreated(**read.model_dump(), secret=secret)

    async def page(
        self, session: AsyncSession, *, access: ProjectAccess, params: PageParams
    ) -> tuple[list[WebhookRead], str | None, int | None]:
        webhooks, cursor = await webhook_repository.page(session, access.project.id, params)
        total = await webhook_repository.count(session, access.project.id) if params.include_total else None
        return [WebhookRead.of(webhook) for webhook in webhooks], cursor, total

    async def get(self, session: AsyncSession, *, access: ProjectAccess, webhook_id: uuid.UUID) -> Webhook:
        """A webhook of this project; another project's answers 404 like an unknown id."""
        webhook = await webhook_repository.get_in_project(session, access.project.id, webhook_id)
        if webhook is None:
            raise NotFound("No such webhook.")
        return webhook

    async def update(
        self, session: AsyncSession, *, webhook: Webhook, data: WebhookUpdate, settings: Settings
    ) -> WebhookRead:
        changes = data.model_dump(exclude_unset=True)
        if "url" in changes:
            await check_target(changes["url"], settings)
        if "event_types" in changes:
            changes["event_types"] = list(dict.fromkeys(event.value for event in data.event_types or ()))
        before = WebhookRead.of(webhook)
        resumed = changes.get("active") is True and not webhook.active
        for key, value in changes.items():
            setattr(webhook, key, value)
        if resumed:
            webhook.disabled_reason = None
            webhook.disabled_at = None
            webhook.consecutive_failures = 0
            enqueue_after_commit(session, DELIVER_TASK, str(webhook.id))
        await session.flush()
        after = WebhookRead.of(webhook)
        old, new = changed_fields(before, after)
        audit_service.record(
            session,
            action="webhook.update",
            resource_type="webhook",
            resource_id=webhook.id,
            project_id=webhook.project_id,
            before=old,
            after=new,
        )
        return after

    async def delete(self, session: AsyncSession, *, webhook: Webhook) -> None:
        audit_service.record(
            session,
            action="webhook.delete",
            resource_type="webhook",
            resource_id=webhook.id,
            project_id=webhook.project_id,
            before={"url": webhook.url, "event_types": webhook.event_types},
        )
        await webhook_repository.delete(session, webhook)

    async def rotate_secret(
        self,
        session: AsyncSession,
        *,
        webhook: Webhook,
        data: WebhookSecretRotate,
        settings: Settings,
        key_ring: KeyRing,
    ) -> WebhookSecretRead:
        """A new secret; the current one keeps signing too (a second signature) for the grace period."""
        grace = data.keep_previous_seconds
        if grace is None:
            grace = settings.webhook_secret_grace_seconds
        try:
            current: str | None = key_ring.decrypt_text(webhook.secret, context=secret_context(webhook.id))
        except DecryptionError:
            current = None  # its key left the ring: nothing to keep, the new secret alone signs
        secret = new_secret()
        webhook.secret = key_ring.encrypt_text(secret, context=secret_context(webhook.id))
        if grace > 0 and current is not None:
            webhook.previous_secret = key_ring.encrypt_text(current, context=previous_secret_context(webhook.id))
            webhook.previous_secret_expires_at = utcnow() + timedelta(seconds=grace)
        else:
            webhook.previous_secret = None
            webhook.previous_secret_expires_at = None
        await session.flush()
        audit_service.record(
            session,
            action="webhook.rotate_secret",
            resource_type="webhook",
            resource_id=webhook.id,
            project_id=webhook.project_id,
            after={"keep_previous_seconds": grace},
        )
        return WebhookSecretRead(secret=secret, previous_secret_expires_at=webhook.previous_secret_expires_at)

    async def deliveries(
        self, session: AsyncSession, *, webhook: Webhook, params: PageParams
    ) -> tuple[list[WebhookDeliveryRead], str | None, int | None]:
        deliveries, cursor = await webhook_repository.deliveries_page(session, webhook.id, params)
        total = await webhook_repository.deliveries_count(session, webhook.id) if params.include_total else None
        key_ring = key_ring_of(session)
        return (
            [WebhookDeliveryRead.of(d, open_payload(key_ring, d.id, d.payload)) for d in deliveries],
            cursor,
            total,
        )

    async def redeliver(
        self, session: AsyncSession, *, webhook: Webhook, delivery_id: uuid.UUID
    ) -> WebhookDeliveryRead:
        """A new delivery of the same event (same `webhook-id`, same body), queued behind the pending ones."""
        original = await webhook_repository.get_delivery(session, webhook.id, delivery_id)
        if original is None:
            raise NotFound("No such delivery.")
        if original.status == DeliveryStatus.pending.value:
            raise DeliveryNotFinished("The delivery is still pending: it will be attempted again by itself.")
        now, copy_id = utcnow(), uuid7()
        key_ring = key_ring_of(session)
        payload = open_payload(key_ring, original.id, original.payload)
        copy = WebhookDelivery(
            id=copy_id,
            webhook_id=webhook.id,
            event_id=original.event_id,
            event_type=original.event_type,
            payload=seal_payload(key_ring, copy_id, payload) if payload != original.payload else payload,
            status=DeliveryStatus.pending.value,
            attempts=0,
            next_attempt_at=now,
            redelivery_of=original.id,
            created_at=now,
        )
        session.add(copy)
        await session.flush()
        enqueue_after_commit(session, DELIVER_TASK, str(webhook.id))
        return WebhookDeliveryRead.of(copy, payload)


webhook_service = WebhookService()
