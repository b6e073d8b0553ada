"""Mail delivery. Requests only enqueue a message (after their commit); the worker's `mail.send` task delivers
it: through SMTP when SMTP_HOST is set, otherwise as an `.eml` file in DATA_DIR/outbox (the embedded default,
and a way to read the mail in development)."""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.config import Settings
from annotation_platform.core.queue import enqueue_after_commit
from annotation_platform.core.types import utcnow

logger = logging.getLogger(__name__)

SEND_TASK = "mail.send"


def enqueue_mail(session: AsyncSession, *, to: str, subject: str, body: str) -> None:
    """Send this mail once the request's transaction commits (nothing is sent if it rolls back)."""
    enqueue_after_commit(session, SEND_TASK, to=to, subject=subject, body=body)


def outbox_dir(settings: Settings) -> Path:
    return (settings.data_dir / "outbox").resolve()


def build_message(settings: Settings, *, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@annotation-platform>"
    message.set_content(body)
    return message


def deliver(settings: Settings, *, to: str, subject: str, body: str) -> str:
    """Deliver one message; returns how ("smtp" or the .eml file's path). SMTP errors propagate, so that the
    task can retry. The recipient is never logged."""
    message = build_message(settings, to=to, subject=subject, body=body)
    if settings.smtp_host:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_tls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
        logger.info("mail sent through SMTP: %s", subject)
        return "smtp"
    folder = outbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
    path.write_bytes(bytes(message))
    logger.info("mail written to the outbox: %s", path.name)
    return str(path)
