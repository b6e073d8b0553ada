"""Alerts on security events: the audit service enqueues `security.alert` (after the commit that wrote the
event); the worker mails every active superuser (SECURITY_ALERT_EMAILS) and/or POSTs the event to a webhook
(SECURITY_ALERT_WEBHOOK_URL), signed with HMAC-SHA256 over the body with SECRET_KEY."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.audit.schemas import AuditEventRead
from annotation_platform.config import Settings
from annotation_platform.mail.service import deliver
from annotation_platform.models import AuditEvent, User

logger = logging.getLogger(__name__)

ALERT_TASK = "security.alert"
ALERTING_ACTIONS = frozenset(
    {
        "auth.login_locked",
        "access.denied_burst",
        "api_key.create",
        "api_key.revoke",
        "member.role_change",
        "user.admin_update",
    }
)
SIGNATURE_HEADER = "X-Signature-SHA256"


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def alert_text(event: AuditEventRead) -> str:
    lines = [
        f"Security event: {event.action}",
        f"When: {event.occurred_at.isoformat()}",
        f"Actor: {event.actor_user_id or 'anonymous'}"
        + (f" (API key {event.actor_api_key_id})" if event.actor_api_key_id else ""),
        f"Resource: {event.resource_type} {event.resource_id or ''}".rstrip(),
        f"From: {event.ip or 'unknown address'}",
        f"Request id: {event.request_id or '-'}",
    ]
    if event.before is not None or event.after is not None:
        lines.append(f"Change: {orjson.dumps(event.before).decode()} -> {orjson.dumps(event.after).decode()}")
    return "\n".join(lines) + "\n"


async def send_alert(sessionmaker: async_sessionmaker[AsyncSession], event_id: uuid.UUID, *, settings: Settings) -> int:
    """Deliver the alerts for one event; returns how many went out. Delivery errors propagate (the task retries)."""
    if not settings.security_alert_emails and not settings.security_alert_webhook_url:
        return 0
    async with sessionmaker() as session:
        event = await session.get(AuditEvent, event_id)
        recipients = (
            list(
                (
                    await session.execute(
                        select(User.email).where(User.is_superuser.is_(True), User.is_active.is_(True))
                    )
                ).scalars()
            )
            if settings.security_alert_emails
            else []
        )
    if event is None:
        logger.warning("security alert for an unknown audit event %s", event_id)
        return 0
    read = AuditEventRead.model_validate(event)
    sent = 0
    if settings.security_alert_webhook_url:
        body = orjson.dumps(read.model_dump(mode="json"))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(settings.resolved_secret_key(), body),
        }
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(settings.security_alert_webhook_url, content=body, headers=headers)
        response.raise_for_status()
        sent += 1
    for recipient in recipients:
        deliver(
            settings,
            to=recipient,
            subject=f"[annotation-platform] security event: {read.action}",
            body=alert_text(read),
        )
        sent += 1
    return sent
