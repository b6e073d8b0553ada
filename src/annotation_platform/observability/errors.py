"""Error tracking with Sentry, on only when SENTRY_DSN is set (the API, the workers and beat alike)."""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.types import Event

from annotation_platform import __version__
from annotation_platform.config import Settings
from annotation_platform.observability.logs import redact


def init_sentry(settings: Settings) -> bool:
    """Starts the Sentry client when a DSN is configured; says whether it did.

    No personal data is sent (`send_default_pii=False`: no cookies, headers, bodies or user e-mails), and event
    messages and exception values are redacted like the logs.
    """
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment.value,
        release=f"annotation-platform@{__version__}",
        send_default_pii=False,
        traces_sample_rate=0.0,
        before_send=_redact_event,
    )
    return True


def _redact_event(event: Event, _hint: dict[str, Any]) -> Event:
    if isinstance(event.get("message"), str):
        event["message"] = redact(event["message"])
    logentry = event.get("logentry")
    if isinstance(logentry, dict) and isinstance(logentry.get("message"), str):
        logentry["message"] = redact(logentry["message"])
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = redact(exception["value"])
    return event
