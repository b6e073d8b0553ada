"""Sending deliveries (the worker's side): signed in the Standard Webhooks style, one webhook at a time, in order.

A worker first takes the webhook's lease (a conditional UPDATE, so two workers never send for the same webhook
at once), then sends its oldest pending delivery, and the next, until one fails or none is due. A failed one
is retried after a backoff by beat's sweep (`webhooks.sweep`); the deliveries created after it wait. No
transaction stays open during an HTTP call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.config import Settings
from annotation_platform.core.crypto import DecryptionError, KeyRing
from annotation_platform.core.errors import AppError
from annotation_platform.core.field_crypto import open_payload
from annotation_platform.core.outbound import TargetRefused, post, resolve
from annotation_platform.core.queue import enqueue_after_commit
from annotation_platform.core.types import utcnow
from annotation_platform.mail.service import enqueue_mail
from annotation_platform.models import DeliveryStatus, Webhook, WebhookDelivery
from annotation_platform.webhook.events import DELIVER_TASK
from annotation_platform.webhook.repository import webhook_repository
from annotation_platform.webhook.service import SECRET_PREFIX, previous_secret_context, secret_context

logger = logging.getLogger(__name__)

USER_AGENT = "annotation-platform-webhooks/1"
SWEEP_BATCH = 1000
LEASE_MARGIN_SECONDS = 30
MAX_ERROR_CHARS = 500


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(attempts: int, settings: Settings) -> float:
    """Seconds before the next attempt, after `attempts` failed ones: base, 4x base, 16x base, ..., capped."""
    return float(min(settings.webhook_retry_base_seconds * 4 ** (attempts - 1), settings.webhook_retry_max_seconds))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    snippet: str | None = None
    latency_ms: int | None = None
    error: str | None = None


def signing_secrets(webhook: Webhook, key_ring: KeyRing, now: datetime) -> list[str]:
    found = [key_ring.decrypt_text(webhook.secret, context=secret_context(webhook.id))]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret and expires is not None and expires > now:
        found.append(key_ring.decrypt_text(webhook.previous_secret, context=previous_secret_context(webhook.id)))
    return found


async def attempt(webhook: Webhook, delivery: WebhookDelivery, *, settings: Settings, key_ring: KeyRing) -> Outcome:
    """One call; the URL's addresses are checked again now (DNS rebinding)."""
    timestamp = int(time.time())
    message_id = str(delivery.event_id)
    try:
        body = open_payload(key_ring, delivery.id, delivery.payload).encode()
    except AppError as exc:
        return Outcome(ok=False, error=f"the stored body does not decrypt: {exc.detail}")
    try:
        secrets = signing_secrets(webhook, key_ring, utcnow())
    except DecryptionError:
        return Outcome(ok=False, error="the signing secret does not decrypt (its key left ENCRYPTION_KEYS): rotate it")
    signatures = " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
    timeout = settings.webhook_timeout_seconds
    try:
        target = await resolve(
            webhook.url,
            allow_private=settings.webhook_allow_private_targets,
            allow_http=settings.webhooks_allow_http,
            seconds=timeout,
        )
        answer = await post(target, body, headers, seconds=timeout)
    except TargetRefused as exc:
        return Outcome(ok=False, error=f"refused: {exc}"[:MAX_ERROR_CHARS])
    except TimeoutError:
        return Outcome(ok=False, error=f"no answer within {timeout:g} s")
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    ok = 200 <= answer.status < 300
    error = (
        None
        if ok
        else f"answered {answer.status}" + (" (redirects are not followed)" if 300 <= answer.status < 400 else "")
    )
    return Outcome(ok, answer.status, answer.snippet, answer.latency_ms, error)


async def record(
    session: AsyncSession,
    *,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    outcome: Outcome,
    settings: Settings,
    key_ring: KeyRing,
) -> bool:
    """Writes the attempt; on failure schedules the retry (or gives up), counts the failure and disables the
    webhook at WEBHOOK_DISABLE_AFTER_FAILURES, mailing its creator. True when the next delivery may go now."""
    now = utcnow()
    webhook = await webhook_repository.get(session, webhook_id)
    delivery = await session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if webhook is None or delivery is None:
        return False
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = outcome.status
    delivery.response_snippet = outcome.snippet
    delivery.latency_ms = outcome.latency_ms
    delivery.error = outcome.error
    _reencrypt(webhook, key_ring)
    if outcome.ok:
        delivery.status = DeliveryStatus.succeeded.value
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        webhook.consecutive_failures = 0
        await session.flush()
        return True
    if delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = DeliveryStatus.failed.value
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=backoff(delivery.attempts, settings))
    webhook.consecutive_failures += 1
    if webhook.active and webhook.consecutive_failures >= settings.webhook_disable_after_failures:
        await _disable(session, webhook, now, outcome)
    await session.flush()
    return delivery.status == DeliveryStatus.failed.value and webhook.active


def _reencrypt(webhook: Webhook, key_ring: KeyRing) -> None:
    """A secret made with an older key of the ring, encrypted again with the current one."""
    if key_ring.needs_rotation(webhook.secret):
        try:
            plain = key_ring.decrypt_text(webhook.secret, context=secret_context(webhook.id))
        except DecryptionError:
            return  # its key is gone: the attempt failed for it, and only a rotation helps
        webhook.secret = key_ring.encrypt_text(plain, context=secret_context(webhook.id))


async def _disable(session: AsyncSession, webhook: Webhook, now: datetime, outcome: Outcome) -> None:
    webhook.active = False
    webhook.disabled_at = now
    webhook.disabled_reason = f"{webhook.consecutive_failures} consecutive failed calls; the last: {outcome.error}"[
        :500
    ]
    logger.warning("webhook %s disabled after %d failed calls", webhook.id, webhook.consecutive_failures)
    for address in await webhook_repository.in_charge(session, webhook):
        enqueue_mail(
            session,
            to=address,
            subject="[annotation-platform] webhook disabled",
            body=(
                f"The webhook {webhook.url} of project {webhook.project_id} was disabled: it failed "
                f"{webhook.consecutive_failures} times in a row (last: {outcome.error}).\n\n"
                "Its pending deliveries are kept; events from now on are not recorded for it. Fix the receiver, "
                "then resume the webhook with "
                f'PATCH /api/v1/projects/{webhook.project_id}/webhooks/{webhook.id} {{"active": true}}; '
                "the pending deliveries are then sent in order.\n"
            ),
        )


def _lease_until(settings: Settings) -> datetime:
    return utcnow() + timedelta(seconds=settings.webhook_timeout_seconds * 2 + LEASE_MARGIN_SECONDS)


async def _send_in_order(
    sessionmaker: async_sessionmaker[AsyncSession], webhook_id: uuid.UUID, *, settings: Settings, key_ring: KeyRing
) -> int:
    sent = 0
    while True:
        async with sessionmaker() as session, session.begin():
            webhook = await webhook_repository.get(session, webhook_id)
            delivery = await webhook_repository.oldest_pending(session, webhook_id)
            if webhook is None or not webhook.active or delivery is None:
                return sent
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > utcnow():
                return sent
            await webhook_repository.renew(session, webhook_id, _lease_until(settings))
        outcome = await attempt(webhook, delivery, settings=settings, key_ring=key_ring)
        async with sessionmaker() as session, session.begin():
            go_on = await record(
                session,
                webhook_id=webhook_id,
                delivery_id=delivery.id,
                outcome=outcome,
                settings=settings,
                key_ring=key_ring,
            )
        sent += 1
        if not go_on:
            return sent


async def _oldest_is_due(sessionmaker: async_sessionmaker[AsyncSession], webhook_id: uuid.UUID) -> bool:
    async with sessionmaker() as session:
        delivery = await webhook_repository.oldest_pending(session, webhook_id)
    return delivery is not None and (delivery.next_attempt_at is None or delivery.next_attempt_at <= utcnow())


async def deliver(
    sessionmaker: async_sessionmaker[AsyncSession], webhook_id: uuid.UUID, *, settings: Settings, key_ring: KeyRing
) -> int:
    """Sends the webhook's due deliveries in order; returns how many attempts were made. Does nothing when
    another worker holds the webhook (that one will see the new deliveries: it checks again after letting go)."""
    attempts = 0
    while True:
        async with sessionmaker() as session, session.begin():
            claimed = await webhook_repository.claim(session, webhook_id, utcnow(), _lease_until(settings))
        if not claimed:
            return attempts
        try:
            attempts += await _send_in_order(sessionmaker, webhook_id, settings=settings, key_ring=key_ring)
        finally:
            async with sessionmaker() as session, session.begin():
                await webhook_repository.release(session, webhook_id)
        if not await _oldest_is_due(sessionmaker, webhook_id):
            return attempts


async def sweep(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Sends a `webhooks.deliver` task for every webhook whose oldest pending delivery is due (retries, and
    deliveries whose task was lost); returns how many."""
    async with sessionmaker() as session, session.begin():
        due = await webhook_repository.due_webhooks(session, utcnow(), SWEEP_BATCH)
        for webhook_id in due:
            enqueue_after_commit(session, DELIVER_TASK, str(webhook_id))
    return len(due)
