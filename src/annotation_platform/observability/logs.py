"""One logging set-up for the API, the workers and beat: JSON lines in production, text in development.

Every line goes through `redact`: whatever a message or a traceback carries, e-mail addresses, bearer tokens,
JWTs, `password=`-style values and credentials inside URLs are replaced before the line is written, and IP
addresses become keyed pseudonyms (`ip-` and 12 hex digits): the same address always gives the same pseudonym
in one deployment, so a burst from one source stays visible, but the address itself is not written
(`annotation-platform logs ip-ref ADDRESS` gives an address's pseudonym to search for). The request id (and,
once authenticated, the user id) of the request being served is added to every line logged during it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any, TextIO

from annotation_platform.config import Settings

request_context: ContextVar[dict[str, Any] | None] = ContextVar("request_context", default=None)
"""The state of the request this code runs for (the ASGI scope's `state`), set by the middleware: its
`request_id`, and its `user_id` once the auth dependency has identified the caller."""
CONTEXT_FIELDS = ("request_id", "user_id")

# Fields a record may carry as `extra=...` that are written as top-level JSON keys.
EXTRA_FIELDS = ("method", "route", "path", "status", "duration_ms", "client", "job_id", "task", "kind")

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in connection URLs (postgresql://, redis://, amqp://, https://...).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s\"']*):[^@\s\"']+@"), r"\1:[redacted]@"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    # The API's own access tokens (auth.service.TOKEN_PREFIX), wherever they appear.
    (re.compile(r"\bapt_[A-Za-z0-9_-]{16,}"), "apt_[redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),
    # key=value, key: value, "key": "value" and key='value with spaces' for keys that name secrets.
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|secret_key|token|access_token|refresh_token|api_key|authorization|dsn)"
            r"(\\?[\"']?\s*[:=]\s*)"
            r"(\\?\"[^\"\\]*\\?\"|'[^']*'|[^\s\"',&;}]+)"
        ),
        r"\1\2[redacted]",
    ),
)


# Candidates only: a match is replaced when `ipaddress` accepts it (so times like 07:17:14 stay).
_IP_CANDIDATES = (
    re.compile(r"(?<![\w.:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\d{1,3}\.){3}\d{1,3})?(?![\w.:])"),
    re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"),
)
_ip_pseudonym_key: bytes = b""


def ip_pseudonym_key(secret_key: str) -> bytes:
    """The key of the pseudonyms, derived from SECRET_KEY (so the API and the workers agree)."""
    return hmac.new(secret_key.encode(), b"annotation-platform log ip pseudonym", hashlib.sha256).digest()


def ip_pseudonym(address: str, key: bytes | None = None) -> str:
    """`ip-` and 12 hex digits of an HMAC of the normalised address."""
    parsed = ip_address(address)
    normalised = (parsed.ipv4_mapped if parsed.version == 6 and parsed.ipv4_mapped else parsed).compressed
    digest = hmac.new(key if key is not None else _ip_pseudonym_key, normalised.encode(), hashlib.sha256)
    return f"ip-{digest.hexdigest()[:12]}"


def _pseudonymise(match: re.Match[str]) -> str:
    """Loopback and unspecified addresses (bind addresses, local probes) name this machine, not a person."""
    try:
        parsed = ip_address(match.group(0))
    except ValueError:
        return match.group(0)
    if parsed.is_loopback or parsed.is_unspecified:
        return match.group(0)
    return ip_pseudonym(match.group(0))


def redact(text: str) -> str:
    """`text` with e-mail addresses, tokens, passwords and URL credentials replaced, IP addresses pseudonymised."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    for candidate in _IP_CANDIDATES:
        text = candidate.sub(_pseudonymise, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request context and known extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = request_context.get() or {}
        for name in CONTEXT_FIELDS:
            if context.get(name) is not None:
                entry[name] = context[name]
        for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """The development format, redacted like the JSON one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = request_context.get() or {}
        for name in CONTEXT_FIELDS:
            if context.get(name) is not None and getattr(record, name, None) is None:
                line += f" {name}={context[name]}"
        return redact(line)


def formatter_for(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.logs_as_json else TextFormatter()


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Sends every logger's records through one handler on the root logger; returns that handler.

    uvicorn's and gunicorn's own loggers propagate to it; uvicorn's access log is off because the
    middleware writes a richer one (`annotation_platform.access`).
    """
    global _ip_pseudonym_key
    _ip_pseudonym_key = ip_pseudonym_key(settings.resolved_secret_key())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(settings))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in ("uvicorn.access", "gunicorn.access"):
        logging.getLogger(name).disabled = True
    # Alembic announces each of its plugins whenever the migration scripts are read (every app start).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return handler
